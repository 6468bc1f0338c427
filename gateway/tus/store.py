"""Where uploads live: the data-store interface and the local-disk store.

The handler asks a store only for what it can do. `DataStore` is the core every store has (create, read the
state, append bytes, digest); the capability mixins below it (`Terminater`, `Concater`, `LengthDeferrer`) are
what the handler checks before announcing an extension, as tusd does. An S3-compatible store is one more class.

The disk store keeps, per upload, a data file and a small JSON info file beside it. The offset is never stored:
it is the size of the data file, so the server cannot report a byte that is not on disk. A chunk that must be
verified first (the checksum extension) is written in place behind a marker file holding the offset it started
at; until the marker is removed the reported offset stays at the marker, and whoever takes the upload's lock
next after a crash cuts the file back to it.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import Gone, NotFound

COPY_CHUNK = 1024 * 1024


def _yield() -> None:
    """Let other work run between blocks of a long copy: under gevent this switches greenlets (the lock's
    watchdog among them), with threads it is a no-op."""
    time.sleep(0)


@dataclass
class UploadInfo:
    id: str
    length: int | None  # None while the length is deferred
    metadata: dict = field(default_factory=dict)
    concat: str | None = None  # None, "partial" or "final"
    parts: list = field(default_factory=list)  # ids of the partial uploads a final one is made of
    created_at: float = 0.0
    expires_at: float | None = None
    completed: bool = False  # completion committed: digest known, finished hook has run
    sha256: str | None = None
    offset: int = 0  # read from the data file, never persisted

    @property
    def is_partial(self) -> bool:
        return self.concat == "partial"

    @property
    def is_final(self) -> bool:
        return self.concat == "final"

    @property
    def all_bytes_on_disk(self) -> bool:
        return self.length is not None and self.offset == self.length

    def to_json(self) -> str:
        data = asdict(self)
        del data["offset"]
        return json.dumps(data)


class DataStore:
    """The core: what every store can do."""

    def create(self, info: UploadInfo) -> None:
        raise NotImplementedError

    def get(self, upload_id: str) -> UploadInfo:
        """The upload's state; NotFound if unknown, Gone if terminated or expired."""
        raise NotImplementedError

    def save(self, info: UploadInfo) -> None:
        raise NotImplementedError

    def recover(self, upload_id: str) -> None:
        """Undo what a crashed writer left unverified. Called only by the holder of the upload's lock."""
        raise NotImplementedError

    def writer(self, info: UploadInfo, provisional: bool) -> "ChunkWriter":
        raise NotImplementedError

    def digest(self, info: UploadInfo) -> str:
        """SHA-256 hex of the whole upload."""
        raise NotImplementedError

    def open(self, upload_id: str) -> BinaryIO:
        raise NotImplementedError

    def list_ids(self) -> Iterator[str]:
        raise NotImplementedError


class Terminater:
    def terminate(self, upload_id: str, reason: str) -> None:
        raise NotImplementedError

    def purge(self, upload_id: str) -> None:
        """Forget a terminated upload entirely (its tombstone too)."""
        raise NotImplementedError


class Concater:
    def concatenate(self, final: UploadInfo, parts: list[UploadInfo]) -> None:
        raise NotImplementedError


class LengthDeferrer:
    """Marker: the store accepts an upload whose length is declared later."""


class ChunkWriter:
    """Appends one request's bytes. `commit` keeps them, `rollback` cuts the file back to where it started."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _DigestCache:
    """Running SHA-256 per upload, so completion need not read the file again.

    Only valid while it covers exactly the bytes on disk; any gap (another process wrote a chunk, a rollback)
    and the digest is computed from the file instead. Bounded, per process.
    """

    def __init__(self, capacity: int = 256):
        self._entries: OrderedDict[str, tuple[int, object]] = OrderedDict()
        self._capacity = capacity
        self._mutex = threading.Lock()

    def take(self, upload_id: str, offset: int):
        with self._mutex:
            entry = self._entries.pop(upload_id, None)
        if entry and entry[0] == offset:
            return entry[1]
        return None

    def put(self, upload_id: str, offset: int, hasher) -> None:
        with self._mutex:
            self._entries[upload_id] = (offset, hasher)
            self._entries.move_to_end(upload_id)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        with self._mutex:
            self._entries.pop(upload_id, None)


class _DiskChunkWriter(ChunkWriter):
    def __init__(self, store: "DiskStore", info: UploadInfo, provisional: bool):
        self._store = store
        self._info = info
        self._start = info.offset
        self._provisional = provisional
        self._marker = store._path(info.id, ".pending")
        if provisional:
            store._write_small(self._marker, str(self._start))
        self._fd = os.open(store._path(info.id, ""), os.O_WRONLY)
        os.lseek(self._fd, self._start, os.SEEK_SET)
        self._hasher = store._digests.take(info.id, self._start)
        if self._hasher is None and self._start == 0:
            self._hasher = hashlib.sha256()
        self._base_hasher = self._hasher.copy() if (provisional and self._hasher is not None) else None
        self.written = 0

    def write(self, data: bytes) -> None:
        self._store.offload(self._write_and_hash, data)
        self.written += len(data)
        _yield()

    def _write_and_hash(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            count = os.write(self._fd, view)
            view = view[count:]
        if self._hasher is not None:
            self._hasher.update(data)

    def commit(self) -> None:
        if self._provisional:
            os.unlink(self._marker)
        if self._hasher is not None:
            self._store._digests.put(self._info.id, self._start + self.written, self._hasher)

    def rollback(self) -> None:
        os.ftruncate(self._fd, self._start)
        if self._provisional:
            os.unlink(self._marker)
        if self._base_hasher is not None:
            self._store._digests.put(self._info.id, self._start, self._base_hasher)
        self.written = 0

    def close(self) -> None:
        os.close(self._fd)


def _call(function, *args):
    return function(*args)


class DiskStore(DataStore, Terminater, Concater, LengthDeferrer):
    """`offload(function, *args)` runs the disk writes and hashing of each chunk; a server whose requests share
    one thread (gevent) passes a thread pool's, so that a large upload does not stall the other requests."""

    def __init__(self, root: Path, offload=None):
        self.root = Path(root)
        self.offload = offload or _call
        self._digests = _DigestCache()

    # -- paths ------------------------------------------------------------------------------------
    def _path(self, upload_id: str, suffix: str) -> Path:
        # IDs are validated by the handler (URL-safe base64 alphabet), so they cannot climb out of root.
        return self.root / upload_id[:2] / f"{upload_id}{suffix}"

    @staticmethod
    def _write_small(path: Path, text: str) -> None:
        """Replace a small file atomically: readers see the old content or the new, never half."""
        temp = path.with_name(path.name + ".tmp")
        with open(temp, "w") as handle:
            handle.write(text)
        os.replace(temp, path)

    # -- core -------------------------------------------------------------------------------------
    def create(self, info: UploadInfo) -> None:
        folder = self._path(info.id, "").parent
        folder.mkdir(parents=True, exist_ok=True)
        # Data file first: an info file always has its data file beside it.
        with open(self._path(info.id, ""), "xb"):
            pass
        self._write_small(self._path(info.id, ".info"), info.to_json())

    def get(self, upload_id: str) -> UploadInfo:
        try:
            raw = self._path(upload_id, ".info").read_text()
        except FileNotFoundError:
            tombstone = self._path(upload_id, ".gone")
            if tombstone.exists():
                raise Gone(f"upload {upload_id} was {tombstone.read_text().strip() or 'terminated'}") from None
            raise NotFound(f"no upload {upload_id}") from None
        info = UploadInfo(**json.loads(raw))
        try:
            pending_from = int(self._path(upload_id, ".pending").read_text())
        except (FileNotFoundError, ValueError):
            pending_from = None
        size = os.stat(self._path(upload_id, "")).st_size
        info.offset = size if pending_from is None else min(size, pending_from)
        return info

    def save(self, info: UploadInfo) -> None:
        self._write_small(self._path(info.id, ".info"), info.to_json())

    def recover(self, upload_id: str) -> None:
        marker = self._path(upload_id, ".pending")
        try:
            start = int(marker.read_text())
        except FileNotFoundError:
            return
        except ValueError:  # the marker itself was cut short: nothing after the data file's size is trusted
            start = os.stat(self._path(upload_id, "")).st_size
        os.truncate(self._path(upload_id, ""), start)
        marker.unlink()
        self._digests.forget(upload_id)

    def writer(self, info: UploadInfo, provisional: bool) -> ChunkWriter:
        return _DiskChunkWriter(self, info, provisional)

    def digest(self, info: UploadInfo) -> str:
        hasher = self._digests.take(info.id, info.offset)
        if hasher is None:
            hasher = hashlib.sha256()
            with self.open(info.id) as handle:
                while block := handle.read(COPY_CHUNK):
                    hasher.update(block)
                    _yield()
        return hasher.hexdigest()

    def open(self, upload_id: str) -> BinaryIO:
        return open(self._path(upload_id, ""), "rb")

    def data_path(self, upload_id: str) -> Path:
        """The data file, for servers that can send it with sendfile."""
        return self._path(upload_id, "")

    def list_ids(self) -> Iterator[str]:
        if not self.root.exists():
            return
        for info_path in self.root.glob("*/*.info"):
            yield info_path.name[: -len(".info")]

    # -- capabilities -----------------------------------------------------------------------------
    def terminate(self, upload_id: str, reason: str) -> None:
        self._write_small(self._path(upload_id, ".gone"), reason)
        for suffix in (".info", "", ".pending"):
            try:
                os.unlink(self._path(upload_id, suffix))
            except FileNotFoundError:
                pass
        self._digests.forget(upload_id)

    def purge(self, upload_id: str) -> None:
        try:
            os.unlink(self._path(upload_id, ".gone"))
        except FileNotFoundError:
            pass

    def list_tombstones(self) -> Iterator[tuple[str, float]]:
        if not self.root.exists():
            return
        for path in self.root.glob("*/*.gone"):
            try:
                yield path.name[: -len(".gone")], path.stat().st_mtime
            except FileNotFoundError:
                continue

    def concatenate(self, final: UploadInfo, parts: list[UploadInfo]) -> None:
        """Stream the parts into the final file and its digest, a megabyte at a time."""
        hasher = hashlib.sha256()
        with open(self._path(final.id, ""), "r+b") as out:
            out.truncate(0)
            for part in parts:
                with self.open(part.id) as source:
                    while block := source.read(COPY_CHUNK):
                        out.write(block)
                        hasher.update(block)
                        _yield()
        self._digests.put(final.id, sum(p.length for p in parts), hasher)
