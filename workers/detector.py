"""Finding the catalog's categories in a script with the lexicon (`workers.lexicon`).

Russian words are compared by lemma (pymorphy3; every possible normal form of an ambiguous word counts), so
inflected forms match; English words by their lower-case form, where a lexicon word ending in `*` matches as a
prefix. A lexicon entry of several words matches those words in order with at most `GAP` words between them.
Each match carries the level of the lexicon list it came from (mild, moderate, severe).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from .scenes import Scene

LEVELS = ("mild", "moderate", "severe")
GAP = 2
FREQUENT = 5  # this many occurrences make a mild category at least moderate ("frequency" in the catalog's marks)
WORD = re.compile(r"[а-яёa-z]+(?:['’-][а-яёa-z]+)*", re.IGNORECASE)
CYRILLIC = re.compile(r"[а-яё]")


@lru_cache(maxsize=1)
def _morph():
    import pymorphy3
    return pymorphy3.MorphAnalyzer()


@lru_cache(maxsize=200_000)
def russian_lemmas(word: str) -> frozenset[str]:
    word = word.replace("ё", "е")
    return frozenset({word} | {parse.normal_form.replace("ё", "е") for parse in _morph().parse(word)})


@lru_cache(maxsize=1)
def lexicon_detector() -> "Detector":
    from .lexicon import LEXICON
    return Detector(LEXICON)


@dataclass(frozen=True)
class Term:
    code: str
    level: str
    words: tuple[str, ...]  # lemmas (Russian) or lower-case words / prefixes ending in "*" (English)
    text: str


@dataclass
class Match:
    code: str
    level: str
    scene: Scene
    line_number: int
    line: str
    term: str
    vetoed: bool = False  # overruled by the learnt model (workers.assess)


@dataclass
class CategoryResult:
    code: str
    count: int = 0
    level: str = "mild"
    matches: list[Match] = field(default_factory=list)


def _normalise(word: str) -> str:
    return word.lower().replace("ё", "е").replace("’", "'")


class Detector:
    def __init__(self, lexicon: dict):
        self._exact: dict[str, list[Term]] = defaultdict(list)  # first word → terms
        self._prefix: dict[str, list[Term]] = defaultdict(list)  # first-word prefix → terms
        for code, languages in lexicon.items():
            for language, levels in languages.items():
                for level, entries in levels.items():
                    if level not in LEVELS:
                        raise ValueError(f"lexicon {code}/{language}: unknown level {level!r}")
                    for entry in entries:
                        words = tuple(_normalise(word) for word in entry.split())
                        term = Term(code, level, words, entry)
                        first = words[0]
                        if first.endswith("*"):
                            self._prefix[first[:-1]].append(term)
                        else:
                            self._exact[first].append(term)

    @staticmethod
    def _forms(word: str) -> frozenset[str]:
        word = _normalise(word)
        return russian_lemmas(word) if CYRILLIC.search(word) else frozenset({word})

    def _word_matches(self, pattern: str, forms: frozenset[str], surface: str) -> bool:
        if pattern.endswith("*"):
            return surface.startswith(pattern[:-1])
        return pattern in forms

    def _candidates(self, forms: frozenset[str], surface: str):
        for form in forms:
            yield from self._exact.get(form, ())
        for length in range(2, len(surface) + 1):
            yield from self._prefix.get(surface[:length], ())

    def scan_line(self, text: str) -> list[Term]:
        words = [_normalise(w) for w in WORD.findall(text)]
        forms = [self._forms(w) for w in words]
        found: list[Term] = []
        for index, (surface, word_forms) in enumerate(zip(words, forms)):
            for term in self._candidates(word_forms, surface):
                if self._rest_matches(term.words[1:], words, forms, index + 1):
                    found.append(term)
        return found

    def _rest_matches(self, rest, words, forms, start) -> bool:
        position = start
        for pattern in rest:
            for candidate in range(position, min(position + GAP + 1, len(words))):
                if self._word_matches(pattern, forms[candidate], words[candidate]):
                    position = candidate + 1
                    break
            else:
                return False
        return True

    def scan(self, scenes: list[Scene]) -> list[Match]:
        """One match per line and category, at the line's strongest term for it."""
        matches: list[Match] = []
        for scene in scenes:
            for line_number, line in scene.lines:
                strongest: dict[str, Term] = {}
                for term in self.scan_line(line):
                    held = strongest.get(term.code)
                    if held is None or LEVELS.index(term.level) > LEVELS.index(held.level):
                        strongest[term.code] = term
                matches += [Match(code, term.level, scene, line_number, line.strip(), term.text)
                            for code, term in strongest.items()]
        return matches


def summarise(matches: list[Match]) -> dict[str, CategoryResult]:
    """Matches by category: how many, and the strongest level (raised by the frequency rule)."""
    results: dict[str, CategoryResult] = {}
    for match in matches:
        result = results.setdefault(match.code, CategoryResult(match.code))
        result.count += 1
        if LEVELS.index(match.level) > LEVELS.index(result.level):
            result.level = match.level
        result.matches.append(match)
    for result in results.values():
        if result.count >= FREQUENT and result.level == "mild":
            result.level = "moderate"
    return results
