"""The learnt half of the built-in analyzer (`workers.classifier`) and how `workers.assess` combines it with the
lexicon: what it adds, what it overrules, how it judges long scenes, and how the fitted model is kept on disk.

No database, Redis or server. Tests of the mechanics train on a small corpus written here; tests of behaviour use
the real model (trained once per process, a few seconds).
"""
from __future__ import annotations

import json
import logging

import pytest

from workers import classifier
from workers.assess import assess
from workers.detector import lexicon_detector
from workers.scenes import split_scenes

DRUGS = ["Он нюхает белую дорожку через свёрнутую купюру и трёт нос.",
         "She cuts the powder on the mirror with a credit card and snorts it.",
         "Барыга отсыпает порошок в пакетик, клиент суёт ему деньги.",
         "He rolls a joint, lights it and passes it around the circle.",
         "Она колет героин в вену, жгут зажат в зубах.",
         "The dealer hands over two pills of ecstasy for fifty bucks."]
CLEAN = ["Бабушка печёт пирог с яблоками и зовёт внуков к столу.",
         "The kids fly a kite on the hill while dad takes pictures.",
         "Учительница раздаёт тетради, за окном идёт первый снег.",
         "She waters the tomatoes in the greenhouse and hums a song.",
         "Мальчик учит собаку приносить палку на берегу реки.",
         "The choir rehearses a carol; the conductor taps his baton."]


def _excerpt(number: int, text: str, categories: list[str], rating: str, **extra) -> dict:
    return {"id": f"t-{number}", "lang": "ru", "text": f"INT. ROOM - DAY\n{text}", "categories": categories,
            "rating": rating, "batch": 99, **extra}


def tiny_corpus() -> list[dict]:
    return ([_excerpt(i, text, ["drugs"], "18+") for i, text in enumerate(DRUGS)]
            + [_excerpt(100 + i, text, [], "0+") for i, text in enumerate(CLEAN)])


@pytest.fixture(scope="module")
def tiny_model() -> classifier.SceneModel:
    return classifier.SceneModel.train(tiny_corpus())


@pytest.fixture(scope="module")
def catalog() -> list[dict]:
    from gateway.catalog import read_workbook
    from gateway.config import PROJECT_ROOT
    return [dict(entry.values(), id=entry.id) for entry in read_workbook(PROJECT_ROOT / "media"
                                                                          / "classification_events.xlsx")]


def test_the_model_learns_its_examples(tiny_model):
    drugs, clean = tiny_model.judge([["В туалете клуба он нюхает дорожку порошка через купюру."],
                                     ["Дедушка с внуком пекут пирог и смотрят на первый снег."]])
    assert drugs.probabilities["drugs"] > 0.5 > clean.probabilities["drugs"]
    assert drugs.age == "18+" and clean.age == "0+"


def test_function_words_and_headings_are_not_features():
    assert classifier.word_features("INT. KITCHEN - NIGHT\nYou're not going to Juilliard on my dime.") == [
        "juilliard", "dime", "juilliard dime"]


def test_a_scene_with_too_few_words_is_not_judged(tiny_model):
    (title,) = tiny_model.judge([["ДАЧНОЕ ЛЕТО"]])
    assert set(title.probabilities.values()) == {0.0} and title.age == "0+"


def test_a_long_scene_is_judged_by_windows():
    learnt = classifier.model()
    calm = [CLEAN[i % len(CLEAN)] for i in range(40)]
    scene = calm[:20] + DRUGS[:3] + calm[20:]
    (windowed, quiet) = learnt.judge([scene, calm])
    whole = learnt.categories["drugs"].predict_proba(learnt._matrix(["\n".join(scene)]))[0, 1]
    assert windowed.probabilities["drugs"] >= classifier.THRESHOLD > whole, "a passage of three lines among forty still counts"
    assert quiet.probabilities["drugs"] < classifier.THRESHOLD


def test_holdout_excerpts_are_never_trained_on():
    corpus = classifier.load_corpus()
    held = [e for e in corpus if e.get("holdout")]
    assert held, "the corpus keeps a held-out part for bench/analyzer_quality.py"
    assert not any(e.get("holdout") for e in classifier.training_part(corpus))
    assert len(classifier.training_part(corpus)) == len(corpus) - len(held)


def test_doubtful_terms_are_those_with_a_poor_record():
    corpus = [_excerpt(1, "Он нюхает кокаин.", ["drugs"], "18+"),
              _excerpt(2, "Шеф кладёт кокаин в сейф.", ["drugs"], "18+"),
              _excerpt(3, "Повар смотрит на белый порошок: это сода.", [], "0+"),
              _excerpt(4, "Бабушка берёт белый порошок: это мука.", [], "0+")]
    doubtful = classifier._doubtful_terms(corpus)
    assert any(code == "drugs" and "порошок" in term for code, term in doubtful)
    assert not any("кокаин" in term for _, term in doubtful)


def test_the_fitted_model_is_kept_on_disk(tmp_path, monkeypatch):
    corpus_file = tmp_path / "excerpts.jsonl"
    corpus_file.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in tiny_corpus()), encoding="utf-8")
    monkeypatch.setattr(classifier, "CORPUS", corpus_file)
    cache = tmp_path / "cache"
    first = classifier.load_or_fit(cache)
    (kept,) = cache.glob("scene-model-*.pickle")

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although a kept model was there")

    monkeypatch.setattr(classifier.SceneModel, "train", no_training)
    second = classifier.load_or_fit(cache)
    scene = [[DRUGS[4]]]
    assert second.judge(scene)[0].probabilities == first.judge(scene)[0].probabilities

    corpus_file.write_text(corpus_file.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert classifier._fingerprint() not in kept.name, "a changed corpus must not reuse the kept model"
    monkeypatch.undo()
    monkeypatch.setattr(classifier, "CORPUS", corpus_file)
    classifier.load_or_fit(cache)
    (replacement,) = cache.glob("scene-model-*.pickle")
    assert replacement != kept and not kept.exists(), "the stale model is removed when a new one is kept"


def test_an_unreadable_kept_model_is_replaced(tmp_path, monkeypatch, caplog):
    corpus_file = tmp_path / "excerpts.jsonl"
    corpus_file.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in tiny_corpus()), encoding="utf-8")
    monkeypatch.setattr(classifier, "CORPUS", corpus_file)
    cache = tmp_path / "cache"
    cache.mkdir()
    broken = cache / f"scene-model-{classifier._fingerprint()}.pickle"
    broken.write_bytes(b"half a pickle")
    with caplog.at_level(logging.WARNING):
        learnt = classifier.load_or_fit(cache)
    assert "unreadable" in caplog.text
    assert learnt.judge([[DRUGS[4]]])[0].probabilities["drugs"] > 0.5
    assert classifier.load_or_fit(cache).categories.keys() == learnt.categories.keys()


# -- the real model, with the lexicon ---------------------------------------------------------------------------

def _lexicon_codes(text: str) -> set[str]:
    return {match.code for match in lexicon_detector().scan(split_scenes(text))}


def test_a_scene_that_only_shows_its_category_is_found(catalog):
    text = ("ИНТ. КАБИНЕТ ЧИНОВНИКА — ДЕНЬ\nПредприниматель кладёт на стол пухлую папку. Чиновник заглядывает "
            "внутрь, прячет папку в ящик и подписывает разрешение.\nЧИНОВНИК: Приятно иметь дело с понимающим "
            "человеком.")
    assert "greed_corruption" not in _lexicon_codes(text)
    assessment = assess(text, catalog)
    assert "greed_corruption" in assessment.results
    (match,) = assessment.results["greed_corruption"].matches
    assert match.line in text and match.term, "a learnt finding quotes its line and names its strongest words"


def test_a_doubtful_word_in_an_innocent_scene_is_overruled(catalog):
    text = ("INT. GARDEN - DAY\nGRANDPA pulls weed from the carrot bed and tosses it on the compost heap.\n"
            "GRANDPA: These dandelions come back every spring, Tommy.")
    assert "drugs" in _lexicon_codes(text)
    assert "drugs" not in assess(text, catalog).results
