"""The built-in analyzer's findings on known screenplays, and its quality on the labelled development set (SPEC §9).

- Every fixture screenplay in tests/fixtures/scripts/ (TXT, DOCX, PDF, read as the analyzer reads an upload, by
  content) gives exactly the categories and the suggested rating of expected.json.
- The tuning part of workers/corpus/excerpts.jsonl (the scene model's training data) meets the quality bar:
  recall ≥ 0.9, precision ≥ 0.8, rating exact in ≥ 70 % of excerpts. (The held-out part is reported by
  bench/analyzer_quality.py, not asserted: it estimates unseen text and must not be tuned against.)
- The lexicon itself is well formed: every code of the catalog has Russian and English entries, every level is
  known, and no entry holds characters the detector can never match.

No database, Redis or server: these tests need only the workbook and the lexicon.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from workers.assess import assess
from workers.detector import LEVELS, Detector
from workers.documents import extract_text
from workers.lexicon import LEXICON

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "fixtures" / "scripts"
EXPECTED = json.loads((SCRIPTS / "expected.json").read_text(encoding="utf-8"))


def _quality_module():
    spec = importlib.util.spec_from_file_location("analyzer_quality", ROOT / "bench" / "analyzer_quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


quality = _quality_module()


@pytest.fixture(scope="module")
def catalog() -> list[dict]:
    return quality.load_catalog()


def test_every_fixture_has_an_expectation():
    files = sorted(p.name for p in SCRIPTS.iterdir() if p.suffix in (".txt", ".docx", ".pdf"))
    assert files == sorted(EXPECTED), "expected.json and the fixture files differ"
    assert {Path(name).suffix for name in files} == {".txt", ".docx", ".pdf"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_script(name, catalog):
    with open(SCRIPTS / name, "rb") as handle:
        text = extract_text(handle)
    assessment = assess(text, catalog)
    expected = EXPECTED[name]
    found = sorted(assessment.results)
    details = {code: [m.term for m in result.matches] for code, result in assessment.results.items()}
    assert found == sorted(expected["categories"]), f"{name}: found {details}"
    assert assessment.suggested_age == expected["rating"], f"{name}: levels " + str(
        {code: result.level for code, result in assessment.results.items()})


def test_document_formats_agree(catalog):
    """The DOCX and PDF copies of a script give the same findings, counts and scenes as its text."""
    for stem in {Path(name).stem for name in EXPECTED if not name.endswith(".txt")}:
        outcomes = []
        for suffix in (".txt", ".docx", ".pdf"):
            with open(SCRIPTS / f"{stem}{suffix}", "rb") as handle:
                assessment = assess(extract_text(handle), catalog)
            outcomes.append(({code: r.count for code, r in assessment.results.items()}, len(assessment.scenes)))
        assert outcomes[0] == outcomes[1] == outcomes[2], stem


def test_development_set_is_labelled_sensibly(catalog):
    excerpts = quality.load_excerpts()
    codes = {entry["code"] for entry in catalog}
    assert len(excerpts) >= 120
    assert {e["lang"] for e in excerpts} == {"ru", "en"}
    for excerpt in excerpts:
        assert set(excerpt["categories"]) <= codes, excerpt["id"]
        assert excerpt["rating"] in quality.AGES, excerpt["id"]
        assert 2 <= len(excerpt["text"].splitlines()) <= 10, excerpt["id"]
    assert {c for e in excerpts for c in e["categories"]} == codes, "every category appears in the set"
    clean = sum(1 for e in excerpts if not e["categories"])
    assert 0.15 <= clean / len(excerpts) <= 0.3
    assert any(e["holdout"] for e in excerpts) and any(not e["holdout"] for e in excerpts)


def test_tuning_part_is_learnt(catalog):
    """The analyzer meets the quality bar on what its lexicon was tuned on and its model trained on; ratings more
    than one step too low are allowed at one in a thousand excerpts (the model does not overrule the lexicon's
    level, so a scene whose only word is a mild one keeps it)."""
    tuning, _ = quality.split(quality.load_excerpts())
    figures = quality.figures(quality.run(tuning, catalog))
    summary = (f"recall {figures.recall:.3f}, precision {figures.precision:.3f}, rating exact "
               f"{figures.rating_exact:.1%}, too low by more than one step {figures.too_low_by_more_than_one}; "
               f"missed {dict(figures.missed.most_common(8))}, spurious {dict(figures.spurious.most_common(8))}")
    assert figures.recall >= quality.BAR["recall"], summary
    assert figures.precision >= quality.BAR["precision"], summary
    assert figures.rating_exact >= quality.BAR["rating_exact"], summary
    assert figures.too_low_by_more_than_one <= len(tuning) / 1000, summary


def test_lexicon_covers_the_catalog(catalog):
    codes = [entry["code"] for entry in catalog]
    assert sorted(LEXICON) == sorted(codes)
    for code in codes:
        for language in ("ru", "en"):
            levels = LEXICON[code].get(language)
            assert levels and any(levels.values()), f"{code}: no {language} entries"
            assert set(levels) <= set(LEVELS), code


def test_lexicon_entries_can_match():
    """Entries are whitespace-separated words the detector's tokenizer can produce (letters, inner ' or -),
    each optionally a prefix ending in "*"; a lone "*" stands for any one word but never starts an entry."""
    word = re.compile(r"[a-zа-яё]+(?:['’-][a-zа-яё]+)*\*?")
    for code, languages in LEXICON.items():
        for language, levels in languages.items():
            for level, entries in levels.items():
                for entry in entries:
                    words = entry.split()
                    assert words and words[0] != "*", (code, entry)
                    for item in words:
                        assert item == "*" or word.fullmatch(item), (code, language, level, entry)


def test_near_entries_reach_across_a_few_words():
    detector = Detector({"children_with_weapons": {"ru": {"moderate": ["мальчик пистолет",
                                                                          "мальчик * * * пистолет"]}}})
    assert detector.scan_line("Мальчик достаёт из отцовского сейфа пистолет")
    assert not detector.scan_line("Мальчик ушёл спать, а поздно вечером отец долго чистит старый пистолет")


def test_imperfective_forms_match():
    """Action lines use the present tense, so the imperfective partner of a perfective entry must match."""
    detector = Detector(LEXICON)
    codes = {term.code for term in detector.scan_line("Барыга выхватывает нож и убивает охранника.")}
    assert {"weapons", "physical_violence"} <= codes


def test_no_duplicate_keys_in_lexicon_source():
    """A repeated key in a dict literal silently drops the earlier entries: never in the lexicon's source."""
    import ast

    tree = ast.parse((ROOT / "workers" / "lexicon.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = [key.value for key in node.keys if isinstance(key, ast.Constant)]
            repeated = sorted({key for key in keys if keys.count(key) > 1})
            assert not repeated, f"line {node.lineno}: {repeated}"
