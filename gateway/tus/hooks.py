"""How the application hears about uploads, without the protocol knowing who listens.

Partial uploads (concatenation) are pieces of a file, not files: they fire no hooks. `finished` runs under the
upload's lock before completion is recorded, so a listener that raises leaves the upload unfinished and the next
request finishes it; a listener must therefore be idempotent (it may see the same upload again after a crash
between its commit and ours).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .store import UploadInfo


@dataclass
class Hooks:
    created: list[Callable[[UploadInfo], None]] = field(default_factory=list)
    progress: list[Callable[[UploadInfo], None]] = field(default_factory=list)
    finished: list[Callable[[UploadInfo], None]] = field(default_factory=list)
    terminated: list[Callable[[UploadInfo, str], None]] = field(default_factory=list)
    # Counters for operators: "bytes" (with a count), "takeover", "refused".
    counted: list[Callable[[str, int], None]] = field(default_factory=list)

    def fire(self, name: str, *args) -> None:
        for listener in getattr(self, name):
            listener(*args)
