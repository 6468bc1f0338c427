"""A script's assessment: scenes, the categories found in them, and the suggested age rating by the catalog's
rule (SPEC §9: a finding's severity picks within its category's age range, mild the lower bound, severe the
upper; the script takes the highest).

Two readers of each scene work together. The lexicon (`workers.detector`) finds what a scene names, line by line,
with a level per word list. The learnt model (`workers.classifier`) overrules lexicon hits by entries with a poor
record when it sees nothing of their category, and adds the categories a scene only shows; the level of what it
adds reaches one step below the age it judges the scene asks for, where the category's range allows (one step of
slack, because that judgement errs both ways, while the bar allows a rating one step low but never two).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from gateway.models import AGES
from gateway.findings import age_for, suggested_rating

from . import classifier
from .detector import LEVELS, CategoryResult, Match, lexicon_detector, summarise
from .scenes import Scene, split_scenes

# A scene that asks for at least this age, with nothing found in it, gets its likeliest category.
FALLBACK_AGE = "18+"
# A lexicon hit by an entry with a poor record in the corpus (classifier.SceneModel.doubtful_terms) falls when
# the model gives its category less than this in its scene.
VETO = 0.1


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


def level_reaching(entry, age: str) -> str:
    """The strongest level whose age in `entry`'s range is at most `age` (mild at least)."""
    level = "mild"
    for candidate in LEVELS:
        reached = age_for(entry, candidate)
        if reached and AGES.index(reached) <= AGES.index(age):
            level = candidate
    return level


def _judge_scenes(scenes: list[Scene], lexicon_matches: list[Match], catalog: dict,
                  learnt: classifier.SceneModel) -> list[Match]:
    """The model's part, scene by scene: it overrules doubtful lexicon hits and adds the categories a scene only
    shows, at the level that reaches one step below the age the scene asks for. Returns the matches it adds."""
    by_scene: dict[int, list[Match]] = defaultdict(list)
    for match in lexicon_matches:
        by_scene[match.scene.number].append(match)
    added: list[Match] = []
    for scene, judgement in zip(scenes, learnt.judge([[line for _, line in s.lines] for s in scenes])):
        named = set()
        for match in by_scene[scene.number]:
            if (match.code, match.term) in learnt.doubtful_terms and judgement.probabilities.get(match.code, 1) < VETO:
                match.vetoed = True
            elif match.code in catalog:
                named.add(match.code)
        shown = {code for code in judgement.found() if code in catalog} - named
        if not named and not shown and AGES.index(judgement.age) >= AGES.index(FALLBACK_AGE):
            shown = {judgement.likeliest()} & set(catalog)
        floor = AGES[max(AGES.index(judgement.age) - 1, 0)]
        for code in shown:
            index, words = learnt.evidence(code, [line for _, line in scene.lines])
            line_number, line = scene.lines[index]
            added.append(Match(code, level_reaching(catalog[code], floor), scene, line_number, line.strip(),
                               ", ".join(words) or "the scene as a whole"))
    return added


def assess(text: str, catalog_entries: list[dict], model_cache: Path | None = None) -> Assessment:
    """`catalog_entries` as GET /violations/ returns them; `model_cache` a directory for the fitted model."""
    catalog = {entry["code"]: SimpleNamespace(**entry) for entry in catalog_entries}
    scenes = split_scenes(text)
    matches = lexicon_detector().scan(scenes)
    matches += _judge_scenes(scenes, matches, catalog, classifier.model(model_cache))
    found = summarise([match for match in matches if not match.vetoed])
    results = {code: result for code, result in found.items()
               if code in catalog and SUBSUMED_BY.get(code) not in found}
    rating = suggested_rating([(catalog[code], result.level) for code, result in results.items()])
    return Assessment(scenes, results, catalog, rating)
