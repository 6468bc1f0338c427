"""A script's assessment: scenes, the categories found in them, and the suggested age rating by the catalog's
rule (SPEC §9: a finding's severity picks within its category's age range, mild the lower bound, severe the
upper; the script takes the highest)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

from gateway.findings import age_for, suggested_rating

from .detector import CategoryResult, Detector
from .lexicon import LEXICON
from .scenes import Scene, split_scenes


@lru_cache(maxsize=1)
def detector() -> Detector:
    return Detector(LEXICON)


@dataclass
class Assessment:
    scenes: list[Scene]
    results: dict[str, CategoryResult]  # by catalog code
    catalog: dict[str, SimpleNamespace]  # by catalog code: id, name, age_min, age_max, age_marks …
    suggested_age: str

    def age_of(self, code: str) -> str | None:
        result = self.results[code]
        return age_for(self.catalog[code], result.level)


# A specific category found makes its generic sibling redundant: the same words signal both.
SUBSUMED_BY = {"nudity_neutral": "nudity_sexualized"}


def assess(text: str, catalog_entries: list[dict]) -> Assessment:
    """`catalog_entries` as GET /violations/ returns them."""
    catalog = {entry["code"]: SimpleNamespace(**entry) for entry in catalog_entries}
    scenes = split_scenes(text)
    found = detector().scan(scenes)
    results = {code: result for code, result in found.items()
               if code in catalog and SUBSUMED_BY.get(code) not in found}
    rating = suggested_rating([(catalog[code], result.level) for code, result in results.items()])
    return Assessment(scenes, results, catalog, rating)
