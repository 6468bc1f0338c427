"""A scene classifier learnt from labelled excerpts, beside the lexicon.

The lexicon finds what a scene names; a scene that only shows its category ("an envelope slides under the file,
the inspector nods") has none of its words, and a word can name a category in a scene that has none of it ("white
powder" in a cake recipe). This model learns from the labelled excerpts of `workers/corpus/excerpts.jsonl` which
words go with each category and with each age rating, independently of the lexicon, so that each checks the other:

- features: lemmas (Russian, pymorphy3) or stems (English, Snowball) of content words, adjacent pairs of them, and
  character 3- to 5-grams within them (slang, compounds and forms the lemmatiser does not know); function words
  are left out, so the model cannot lean on "you" or "мы";
- one logistic regression per category, found when its probability reaches `THRESHOLD` (`assess` also uses it to
  overrule a lexicon hit by an entry with a poor record in the corpus, `doubtful_terms`);
- one over the five ratings: how old an audience the scene as a whole asks for (`assess` uses it to set the
  severity of what was found, and to name the likeliest category of a scene that asks for 18+ while no category
  passed its threshold).

The thresholds were chosen on an evaluation set written independently of the corpus (bench/RESULTS.md).
Excerpts marked `"holdout": true` are never trained on. Training takes about half a minute; `model()` keeps the
fitted model in the process and, given a cache directory, on disk under a name that changes with the corpus, this
module and scikit-learn's version.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from gateway.models import AGES

from .detector import CYRILLIC, WORD, _morph, _normalise, lexicon_detector
from .scenes import HEADING

log = logging.getLogger(__name__)

CORPUS = Path(__file__).resolve().parent / "corpus" / "excerpts.jsonl"
THRESHOLD = 0.4
REGULARISATION = 2.0  # inverse strength (C) of every regression
WINDOW = 8  # lines a scene is judged by at a time (the corpus's excerpts have 2 to 8)
MIN_WORDS = 6  # content words below which a scene is not judged at all
DOUBT_HITS, TRUSTED = 2, 0.8  # see _doubtful_terms


@lru_cache(maxsize=1)
def _english_stemmer():
    import snowballstemmer
    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    if CYRILLIC.search(word):
        return _morph().parse(word)[0].normal_form.replace("ё", "е")
    return _english_stemmer().stemWord(word)


# Words that say nothing of a category by themselves; left out, so the model cannot lean on them.
FUNCTION_WORDS = frozenset("""
a an the and or but if then than so as at by for from in into of off on onto out over to up with without about
after before under again also just not no nor very too here there now this that these those it its i me my mine
you your yours he him his she her hers we us our they them their what which who whom whose when where why how
all any each some such own same other be am is are was were been being have has had do does did will would shall
should can could may might must let get got go going s t d ll re ve m don didn doesn isn aren wasn won
oh ok okay yeah hey well like one i'm you're he's she's it's we're they're i've you've we've i'll you'll
he'll she'll we'll they'll i'd you'd that's there's what's let's don't doesn't didn't can't won't isn't aren't
wasn't weren't couldn't wouldn't shouldn't
и а но или да нет не ни же ли бы то ну вот так уже еще ещё только даже в во на с со к ко по за из от до у о об
обо для без под над при про через между перед это этот тот та те то весь все всё сам свой мой твой наш ваш его
её ее их я ты он она оно мы вы они себя кто что где когда куда откуда там тут здесь сейчас потом тоже или если
чтобы как какой который быть есть было был была были будет ага угу эй ой ах
""".split())


def _content_words(line: str) -> list[str]:
    """The line's words less the function words; none for a scene heading, which says where, not what."""
    if HEADING.match(line):
        return []
    return [word for word in (_normalise(w) for w in WORD.findall(line)) if word not in FUNCTION_WORDS]


def word_features(text: str) -> list[str]:
    found: list[str] = []
    for line in text.splitlines():
        stems = [stem for stem in map(_stem, _content_words(line)) if stem not in FUNCTION_WORDS]
        found += stems
        found += [f"{a} {b}" for a, b in zip(stems, stems[1:])]
    return found


def character_features(text: str) -> list[str]:
    """3- to 5-grams of the characters of each content word, padded with spaces at both ends."""
    grams: list[str] = []
    for line in text.splitlines():
        for word in _content_words(line):
            padded = f" {word} "
            grams += [padded[i:i + n] for n in (3, 4, 5) for i in range(len(padded) - n + 1)]
    return grams


def load_corpus(path: Path = CORPUS) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _windows(lines: list[str]) -> list[list[str]]:
    """Runs of up to WINDOW non-blank lines, overlapping by half; a scene with fewer than MIN_WORDS content words
    (a title page, a bare heading) has none: the model would read its own biases into so little text."""
    kept = [line for line in lines if line.strip()]
    if sum(len(_content_words(line)) for line in kept) < MIN_WORDS:
        return []
    if len(kept) <= WINDOW:
        return [kept]
    step = WINDOW // 2
    return [kept[start:start + WINDOW] for start in range(0, len(kept) - step, step)]


@dataclass
class Judgement:
    probabilities: dict[str, float]  # category code -> probability
    age: str  # the rating the scene as a whole asks for

    def found(self) -> set[str]:
        return {code for code, p in self.probabilities.items() if p >= THRESHOLD}

    def likeliest(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)


@dataclass
class SceneModel:
    words: object  # TfidfVectorizer over word_features
    characters: object  # TfidfVectorizer over character n-grams
    categories: dict  # code -> fitted LogisticRegression (codes with fewer than 2 examples are left out)
    rating: object  # one-vs-rest regressions over AGES
    doubtful_terms: frozenset  # (code, lexicon entry) pairs wrong in at least a fifth of their corpus hits

    @classmethod
    def train(cls, excerpts: list[dict]) -> SceneModel:
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        def regression():
            return LogisticRegression(C=REGULARISATION, class_weight="balanced", solver="liblinear", random_state=0)

        texts = [excerpt["text"] for excerpt in excerpts]
        words = TfidfVectorizer(analyzer=word_features, sublinear_tf=True)
        characters = TfidfVectorizer(analyzer=character_features, sublinear_tf=True, min_df=2)
        matrix = hstack([words.fit_transform(texts), characters.fit_transform(texts)]).tocsr()
        categories = {}
        for code in sorted({code for excerpt in excerpts for code in excerpt["categories"]}):
            labels = np.array([code in excerpt["categories"] for excerpt in excerpts])
            if labels.sum() >= 2:
                categories[code] = regression().fit(matrix, labels)
        ratings = np.array([AGES.index(excerpt["rating"]) for excerpt in excerpts])
        rating = OneVsRestClassifier(regression()).fit(matrix, ratings)
        for vectoriser in (words, characters):
            vectoriser.stop_words_ = None  # the features min_df dropped: kept only for introspection, and large
        for regression_ in [*categories.values(), *rating.estimators_]:
            regression_.coef_ = regression_.coef_.astype(np.float32)  # half the memory; the scores do not move
        return cls(words, characters, categories, rating, _doubtful_terms(excerpts))

    def _matrix(self, texts: list[str]):
        from scipy.sparse import hstack
        return hstack([self.words.transform(texts), self.characters.transform(texts)]).tocsr()

    def judge(self, scenes: list[list[str]]) -> list[Judgement]:
        """Each scene (its lines) judged window by window for its categories: the model learnt from excerpts of a
        few lines, and in a long scene a short passage would be drowned by the rest; a category gets the highest
        probability of the scene's windows. The age is judged on the scene whole: the highest of many windows'
        ages would drift upward with the scene's length."""
        windows, owners = [], []
        for number, lines in enumerate(scenes):
            for window in _windows(lines):
                windows.append("\n".join(window))
                owners.append(number)
        judgements = [Judgement(dict.fromkeys(self.categories, 0.0), AGES[0]) for _ in scenes]
        if not windows:
            return judgements
        matrix = self._matrix(windows)
        columns = {code: model.predict_proba(matrix)[:, 1] for code, model in self.categories.items()}
        for row, number in enumerate(owners):
            judgement = judgements[number]
            for code, column in columns.items():
                judgement.probabilities[code] = max(judgement.probabilities[code], float(column[row]))
        judged = sorted(set(owners))
        ages = self.rating.predict(self._matrix(["\n".join(scenes[number]) for number in judged]))
        for number, age in zip(judged, ages):
            judgements[number].age = AGES[int(age)]
        return judgements

    def evidence(self, code: str, lines: list[str]) -> tuple[int, list[str]]:
        """The index of the line that speaks most for `code`, and its strongest words."""
        vocabulary = self.words.vocabulary_
        weights = self.categories[code].coef_[0][:len(vocabulary)]  # the word block comes first
        best, best_score, best_words = 0, float("-inf"), []
        for index, line in enumerate(lines):
            scored = sorted(((weights[vocabulary[f]], f) for f in set(word_features(line)) if f in vocabulary),
                            reverse=True)
            score = sum(weight for weight, _ in scored if weight > 0)
            if score > best_score:
                best, best_score, best_words = index, score, [word for weight, word in scored[:3] if weight > 0]
        return best, best_words


def _doubtful_terms(excerpts: list[dict]) -> frozenset:
    """The lexicon's track record on the corpus: entries whose hits were wrong often enough (at least
    DOUBT_HITS hits, under TRUSTED of them right) that the model may overrule them."""
    detector = lexicon_detector()
    hits, right = Counter(), Counter()
    for excerpt in excerpts:
        for key in {(term.code, term.text) for line in excerpt["text"].splitlines() for term in detector.scan_line(line)}:
            hits[key] += 1
            right[key] += key[0] in excerpt["categories"]
    return frozenset(key for key, count in hits.items() if count >= DOUBT_HITS and right[key] < TRUSTED * count)


def training_part(excerpts: list[dict]) -> list[dict]:
    return [excerpt for excerpt in excerpts if not excerpt.get("holdout")]


def _fingerprint() -> str:
    import sklearn
    digest = hashlib.sha256(CORPUS.read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(sklearn.__version__.encode())
    return digest.hexdigest()[:16]


_fitted: SceneModel | None = None


def model(cache_dir: Path | None = None) -> SceneModel:
    """The process's model: loaded or fitted on first use, then kept (the corpus does not change under a
    running process)."""
    global _fitted
    if _fitted is None:
        _fitted = load_or_fit(cache_dir)
    return _fitted


def load_or_fit(cache_dir: Path | None = None) -> SceneModel:
    """The model kept in `cache_dir` for the current corpus and code, else a freshly fitted one (kept there)."""
    cached = cache_dir / f"scene-model-{_fingerprint()}.pickle" if cache_dir else None
    if cached and cached.exists():
        try:
            with open(cached, "rb") as handle:
                return pickle.load(handle)
        except Exception:  # a file from an interrupted or foreign write: train again
            log.warning("scene model cache %s unreadable; training again", cached)
    excerpts = training_part(load_corpus(CORPUS))
    log.info("fitting the analyzer's scene model on %d excerpts (once per corpus; about half a minute)",
             len(excerpts))
    started = time.monotonic()
    learnt = SceneModel.train(excerpts)
    log.info("scene model fitted in %.0f s", time.monotonic() - started)
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as handle:
            pickle.dump(learnt, handle)
        os.replace(handle.name, cached)  # atomic: a concurrent reader sees the old file or the whole new one
        for stale in cached.parent.glob("scene-model-*.pickle"):
            if stale != cached:
                stale.unlink(missing_ok=True)
    return learnt
