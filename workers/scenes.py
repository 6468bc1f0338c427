"""A screenplay cut into scenes: at scene headings (Russian ИНТ./НАТ./ЭКСТ., English INT./EXT.), else at pages,
else in blocks of paragraphs."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

HEADING = re.compile(
    r"^\s*(?:\d+[A-ZА-Я]?[.)]?\s+)?"
    r"(?:ИНТ|НАТ|ЭКСТ|ИНТ\.?\s*/\s*(?:НАТ|ЭКСТ)|(?:НАТ|ЭКСТ)\.?\s*/\s*ИНТ|INT|EXT|INT\.?\s*/\s*EXT|EXT\.?\s*/\s*INT|I/E)"
    r"(?:\.|\s)\s*\S", re.IGNORECASE)
BLOCK_LINES = 40


@dataclass
class Scene:
    number: int
    heading: str
    lines: list[tuple[int, str]] = field(default_factory=list)  # (line number in the script, text)

    @property
    def label(self) -> str:
        return f"scene {self.number}: {self.heading}" if self.heading else f"part {self.number}"


def split_scenes(text: str) -> list[Scene]:
    numbered = list(enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1))
    if any(HEADING.match(line) for _, line in numbered):
        scenes: list[Scene] = []
        for number, line in numbered:
            if HEADING.match(line):
                scenes.append(Scene(len(scenes) + 1, line.strip()[:120]))
            elif not scenes:
                if line.strip():
                    scenes.append(Scene(1, ""))
                else:
                    continue
            scenes[-1].lines.append((number, line))
        return scenes
    if "\f" in text:
        scenes, page = [], 1
        current = Scene(1, "page 1")
        for number, line in numbered:
            for piece_index, piece in enumerate(line.split("\f")):
                if piece_index:
                    page += 1
                    scenes.append(current)
                    current = Scene(len(scenes) + 1, f"page {page}")
                current.lines.append((number, piece))
        scenes.append(current)
        return [s for s in scenes if any(t.strip() for _, t in s.lines)]
    scenes = []
    for start in range(0, len(numbered), BLOCK_LINES):
        block = numbered[start:start + BLOCK_LINES]
        if any(t.strip() for _, t in block):
            scenes.append(Scene(len(scenes) + 1, f"lines {block[0][0]}–{block[-1][0]}", list(block)))
    return scenes
