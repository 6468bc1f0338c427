"""The tus 1.0.0 protocol over a data store, a locker and hooks.

Web-framework free: a view turns its request into a `TusRequest`, calls `TusHandler.handle`, and sends back the
`TusResponse`. Extensions are announced from what the store can do (see `store.py`).
"""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Mapping, Protocol
from urllib.parse import urlsplit

from . import checksum, metadata
from .errors import (BadRequest, ChecksumMismatch, Conflict, Forbidden, Gone, NotFound, PreconditionFailed, TooLarge, TusError,
                     Unavailable, UnsupportedMediaType)
from .hooks import Hooks
from .locks import HeldLock, RedisLocker
from .store import Concater, DataStore, LengthDeferrer, Terminater, UploadInfo

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
_DIGITS = re.compile(r"^[0-9]{1,19}$")
MAX_INT64 = 2 ** 63 - 1


class Body(Protocol):
    """A request body as a stream. `read` returns b"" at its end, or when the connection broke (then `broken`;
    and `malformed` says why when the client's framing, not the network, was at fault). A body that
    `can_readinto` also fills a buffer of the caller's, without a copy of its own."""
    broken: bool
    malformed: str | None
    can_readinto: bool

    def read(self, size: int) -> bytes: ...

    def readinto(self, view: memoryview) -> int: ...

    def abort(self) -> None:
        """Make a read that is blocked on the network return now."""


@dataclass
class TusRequest:
    method: str
    headers: Mapping[str, str]
    base_url: str  # absolute URL of the collection, ending in "/": where new uploads are located
    body: Body | None = None
    content_length: int | None = None


@dataclass
class TusResponse:
    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""


def _http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)


def _parse_size(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not _DIGITS.match(value) or int(value) > MAX_INT64:
        raise BadRequest(f"{name} must be a non-negative 64-bit integer, got {value[:40]!r}")
    return int(value)


def _carries_body(req: TusRequest) -> bool:
    if req.content_length is not None:
        return req.content_length > 0
    return req.body is not None and req.headers.get("Transfer-Encoding", "").lower() == "chunked"


class TusHandler:
    def __init__(self, store: DataStore, locker: RedisLocker, hooks: Hooks | None = None, *,
                 max_size: int, expiration_seconds: float, chunk_size: int = 1024 * 1024,
                 progress_every: float = 0.5):
        self.store = store
        self.locker = locker
        self.hooks = hooks or Hooks()
        self.max_size = max_size
        self.expiration_seconds = expiration_seconds
        self.chunk_size = chunk_size
        self.progress_every = progress_every

    # -- what we announce -------------------------------------------------------------------------
    @property
    def extensions(self) -> list[str]:
        names = ["creation", "creation-with-upload"]
        if isinstance(self.store, LengthDeferrer):
            names.append("creation-defer-length")
        if isinstance(self.store, Terminater):
            names.append("termination")
        names += ["checksum", "expiration"]
        if isinstance(self.store, Concater):
            names.append("concatenation")
        return names

    def _base_headers(self) -> dict:
        return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store"}

    # -- entry point ------------------------------------------------------------------------------
    def handle(self, req: TusRequest, upload_id: str | None = None) -> TusResponse:
        try:
            if req.method == "OPTIONS":
                return self.options()
            self._check_version(req)
            if upload_id is None:
                if req.method != "POST":
                    raise TusError(f"{req.method} is not allowed on the collection; use POST", status=405,
                                   headers={"Allow": "OPTIONS, POST"})
                return self.post(req)
            if not UPLOAD_ID.match(upload_id):
                raise NotFound("no such upload")
            method = {"HEAD": self.head, "PATCH": self.patch, "DELETE": self.delete}.get(req.method)
            if method is None:
                raise TusError(f"{req.method} is not allowed on an upload", status=405,
                               headers={"Allow": "OPTIONS, HEAD, PATCH, DELETE"})
            return method(req, upload_id)
        except TusError as error:
            headers = self._base_headers()
            headers.update(error.headers)
            headers["Content-Type"] = "text/plain; charset=utf-8"
            body = b"" if req.method == "HEAD" else (error.message + "\n").encode()
            return TusResponse(error.status, headers, body)

    def _check_version(self, req: TusRequest) -> None:
        version = req.headers.get("Tus-Resumable")
        if version != TUS_VERSION:
            said = "is missing" if version is None else f"{version[:20]!r} is not supported"
            raise PreconditionFailed(f"Tus-Resumable {said}; this server speaks tus {TUS_VERSION}",
                                     headers={"Tus-Version": TUS_VERSION})

    # -- OPTIONS ----------------------------------------------------------------------------------
    def options(self) -> TusResponse:
        headers = self._base_headers()
        headers.update({
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": ",".join(self.extensions),
            "Tus-Max-Size": str(self.max_size),
            "Tus-Checksum-Algorithm": ",".join(checksum.ALGORITHMS),
        })
        return TusResponse(204, headers)

    # -- POST: creation, creation-with-upload, concatenation ---------------------------------------
    def post(self, req: TusRequest) -> TusResponse:
        concat, part_ids = self._parse_concat(req)
        meta = metadata.parse(req.headers.get("Upload-Metadata"))
        length_header = req.headers.get("Upload-Length")
        defer_header = req.headers.get("Upload-Defer-Length")
        has_body = _carries_body(req)
        parts: list[UploadInfo] = []
        if concat == "final":
            if length_header is not None or defer_header is not None:
                raise BadRequest("a final upload takes its length from its parts; "
                                 "send neither Upload-Length nor Upload-Defer-Length")
            if has_body:
                raise Forbidden("a final upload cannot carry data; upload the parts instead")
            parts = [self._usable_part(part_id) for part_id in part_ids]
            length = sum(part.length for part in parts)
            if length > self.max_size:
                raise TooLarge(f"the parts add up to {length} bytes, over Tus-Max-Size {self.max_size}")
        else:
            length = _parse_size(length_header, "Upload-Length")
            if defer_header is not None:
                if defer_header.strip() != "1":
                    raise BadRequest("Upload-Defer-Length must be 1")
                if length is not None:
                    raise BadRequest("send either Upload-Length or Upload-Defer-Length, not both")
                if not isinstance(self.store, LengthDeferrer):
                    raise BadRequest("this server needs Upload-Length")
            elif length is None:
                raise BadRequest("Upload-Length (or Upload-Defer-Length: 1) is required")
            if length is not None and length > self.max_size:
                raise TooLarge(f"Upload-Length {length} is over Tus-Max-Size {self.max_size}")
        expected = None
        if has_body:
            self._check_content_type(req)
            expected = checksum.parse(req.headers.get("Upload-Checksum"))

        if has_body and req.content_length is not None:
            room = length if length is not None else self.max_size
            if req.content_length > room:
                raise TooLarge(f"the body ({req.content_length} bytes) goes past the upload's end ({room} bytes)")

        now = time.time()
        info = UploadInfo(id=secrets.token_urlsafe(24), length=length, metadata=meta, concat=concat,
                          parts=[part.id for part in parts], created_at=now,
                          expires_at=now + self.expiration_seconds)
        self.store.create(info)
        headers = self._base_headers()
        headers["Location"] = req.base_url + info.id + "/"
        with self.locker.lock(info.id, on_stop=req.body.abort if req.body else (lambda: None)) as held:
            try:
                info = self.store.get(info.id)
                if concat == "final":
                    self.store.concatenate(info, parts)
                    info = self.store.get(info.id)
                elif has_body:
                    info = self._receive(req, info, held, expected)
                # Announced only once the creation stands: a refused body leaves no upload and no row behind.
                if not info.is_partial:
                    self.hooks.fire("created", info)
            except BaseException:
                self.store.terminate(info.id, "refused at creation")
                self.store.purge(info.id)
                raise
            if concat == "final":
                self._retire_parts(parts)
            self._complete_if_done(info)
        if has_body:
            headers["Upload-Offset"] = str(info.offset)
        if not info.completed:
            headers["Upload-Expires"] = _http_date(info.expires_at)
        return TusResponse(201, headers)

    def _parse_concat(self, req: TusRequest) -> tuple[str | None, list[str]]:
        header = req.headers.get("Upload-Concat")
        if header is None:
            return None, []
        header = header.strip()
        if header == "partial":
            return "partial", []
        if not header.startswith("final;"):
            raise BadRequest("Upload-Concat must be 'partial' or 'final;<url> <url> ...'")
        urls = header[len("final;"):].split()
        if not urls:
            raise BadRequest("Upload-Concat: final names no parts")
        if len(urls) > 1000:
            raise BadRequest("Upload-Concat: final names more than 1000 parts")
        base = urlsplit(req.base_url)
        ids = []
        for url in urls:
            parsed = urlsplit(url)
            if parsed.netloc and (parsed.scheme, parsed.netloc) != (base.scheme, base.netloc):
                raise BadRequest(f"part {url[:200]!r} is not an upload of this server")
            path = parsed.path
            if not path.startswith(base.path):
                raise BadRequest(f"part {url[:200]!r} is not an upload of this server")
            part_id = path[len(base.path):].strip("/")
            if not UPLOAD_ID.match(part_id):
                raise BadRequest(f"part {url[:200]!r} does not name an upload")
            ids.append(part_id)
        return "final", ids

    def _usable_part(self, part_id: str) -> UploadInfo:
        try:
            part = self.store.get(part_id)
        except (NotFound, Gone):
            raise BadRequest(f"part {part_id} is unknown or gone") from None
        if not part.is_partial:
            raise BadRequest(f"upload {part_id} is not a partial upload (create parts with Upload-Concat: partial)")
        if not part.completed:
            raise BadRequest(f"part {part_id} is unfinished ({part.offset} of {part.length} bytes); this server "
                             f"does not support concatenation-unfinished, so finish the parts first")
        return part

    def _retire_parts(self, parts: list[UploadInfo]) -> None:
        """Used parts stay for a retry of the final POST, then expire like unfinished uploads."""
        for part in parts:
            part.expires_at = time.time() + self.expiration_seconds
            self.store.save(part)

    # -- HEAD -------------------------------------------------------------------------------------
    def head(self, req: TusRequest, upload_id: str) -> TusResponse:
        with self.locker.lock(upload_id):
            self.store.recover(upload_id)
            info = self._live(upload_id)
            self._complete_if_done(info)
        headers = self._base_headers()
        headers["Upload-Offset"] = str(info.offset)
        if info.length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(info.length)
        if info.metadata:
            headers["Upload-Metadata"] = metadata.encode(info.metadata)
        if info.is_partial:
            headers["Upload-Concat"] = "partial"
        elif info.is_final:
            headers["Upload-Concat"] = "final;" + " ".join(req.base_url + part + "/" for part in info.parts)
        if not info.completed and info.expires_at:
            headers["Upload-Expires"] = _http_date(info.expires_at)
        return TusResponse(200, headers)

    # -- PATCH ------------------------------------------------------------------------------------
    def patch(self, req: TusRequest, upload_id: str) -> TusResponse:
        self._check_content_type(req)
        offset = _parse_size(req.headers.get("Upload-Offset"), "Upload-Offset")
        if offset is None:
            raise BadRequest("Upload-Offset is required")
        declared_length = _parse_size(req.headers.get("Upload-Length"), "Upload-Length")
        expected = checksum.parse(req.headers.get("Upload-Checksum"))
        with self.locker.lock(upload_id, on_stop=req.body.abort if req.body else (lambda: None)) as held:
            self.store.recover(upload_id)
            info = self._live(upload_id)
            if info.is_final:
                raise Forbidden("a final upload is assembled from its parts and cannot be patched")
            self._complete_if_done(info)
            if declared_length is not None:
                self._declare_length(info, declared_length)
            if offset != info.offset:
                raise Conflict(f"Upload-Offset {offset} does not match the upload's offset {info.offset}",
                               headers={"Upload-Offset": str(info.offset)})
            if info.completed:
                if _carries_body(req):
                    raise TooLarge("the upload is complete; the body goes past Upload-Length")
            else:
                info = self._receive(req, info, held, expected)
            self._complete_if_done(info)
        headers = self._base_headers()
        headers["Upload-Offset"] = str(info.offset)
        if not info.completed:
            headers["Upload-Expires"] = _http_date(info.expires_at)
        if held.should_stop:
            headers["Connection"] = "close"
        return TusResponse(204, headers)

    def _declare_length(self, info: UploadInfo, length: int) -> None:
        if info.length is not None:
            if info.length != length:
                raise BadRequest(f"Upload-Length is already {info.length} and cannot change")
            return
        if length > self.max_size:
            raise TooLarge(f"Upload-Length {length} is over Tus-Max-Size {self.max_size}")
        if length < info.offset:
            raise BadRequest(f"Upload-Length {length} is below the {info.offset} bytes already received")
        info.length = length
        self.store.save(info)

    def _receive(self, req: TusRequest, info: UploadInfo, held: HeldLock,
                 expected: checksum.ExpectedChecksum | None) -> UploadInfo:
        """Stream the body onto the end of the upload and return its new state.

        Without a checksum every byte that arrived is kept, even when the connection breaks. With one, the
        chunk is kept only when complete and matching.
        """
        limit = (info.length if info.length is not None else self.max_size) - info.offset
        declared = req.content_length
        if declared is not None and declared > limit:
            raise TooLarge(f"the body ({declared} bytes) goes past the upload's end ({limit} bytes left)")
        body = req.body
        if body is None:
            return info
        if getattr(body, "can_readinto", False):
            window = memoryview(bytearray(self.chunk_size))

            def next_block(size: int):
                return window[:body.readinto(window[:size])]
        else:
            next_block = body.read
        writer = self.store.writer(info, provisional=expected is not None)
        hasher = expected.new_hasher() if expected else None
        received = 0
        overrun = cut = False
        last_progress = time.monotonic()
        try:
            while True:
                want = self.chunk_size if declared is None else min(self.chunk_size, declared - received)
                if want <= 0:
                    break
                data = next_block(want)
                if held.lost:  # someone else owns the upload now: drop what we hold, write nothing more
                    cut = True
                    break
                if not data:
                    cut = body.broken or (declared is not None and received < declared)
                    break
                if received + len(data) > limit:
                    overrun = True
                    break
                writer.write(data)
                received += len(data)
                if hasher is not None:
                    hasher.update(data)
                if held.should_stop:
                    cut = True
                    break
                if self.hooks.progress and time.monotonic() - last_progress >= self.progress_every:
                    last_progress = time.monotonic()
                    info.offset += received
                    self.hooks.fire("progress", info)
                    info.offset -= received
            if overrun:
                writer.rollback()
                raise TooLarge(f"the body goes past the upload's end ({limit} bytes left); chunk discarded")
            if body.malformed:
                writer.rollback()
                raise BadRequest(f"the request body is malformed ({body.malformed}); chunk discarded")
            if expected is not None:
                if cut:
                    writer.rollback()
                    raise BadRequest("the body was cut short, so its checksum cannot be verified; chunk discarded")
                if hasher.digest() != expected.digest:
                    writer.rollback()
                    raise ChecksumMismatch(f"the body's {expected.algorithm} does not match Upload-Checksum; "
                                           f"chunk discarded")
            writer.commit()
        except BaseException:
            if expected is not None and writer.written:
                writer.rollback()
            raise
        finally:
            writer.close()
            if received:
                self.hooks.fire("counted", "bytes", received)
        info.offset += received
        info.expires_at = time.time() + self.expiration_seconds
        self.store.save(info)
        if not info.all_bytes_on_disk:
            self.hooks.fire("progress", info)
        return info

    @staticmethod
    def _check_content_type(req: TusRequest) -> None:
        content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != OFFSET_CONTENT_TYPE:
            raise UnsupportedMediaType(f"Content-Type must be {OFFSET_CONTENT_TYPE}")

    # -- completion -------------------------------------------------------------------------------
    def _complete_if_done(self, info: UploadInfo) -> None:
        """Record completion once all bytes are on disk. Called with the upload's lock held."""
        if info.completed or not info.all_bytes_on_disk:
            return
        info.sha256 = self.store.digest(info)
        if not info.is_partial:
            try:
                self.hooks.fire("finished", info)
            except Exception as error:
                raise Unavailable(f"the upload's bytes are all here but recording it failed ({error.__class__.__name__}); "
                                  f"ask again (HEAD) to finish it", headers={"Retry-After": "1"}) from error
        info.completed = True
        if not info.is_partial:  # an unused part still expires; a file does not
            info.expires_at = None
        self.store.save(info)

    def _live(self, upload_id: str) -> UploadInfo:
        info = self.store.get(upload_id)
        if not info.completed and info.expires_at is not None and info.expires_at < time.time():
            self._terminate(info, "expired")
            raise Gone("the upload expired before it was finished")
        return info

    # -- DELETE: termination ----------------------------------------------------------------------
    def delete(self, req: TusRequest, upload_id: str) -> TusResponse:
        if not isinstance(self.store, Terminater):
            raise TusError("termination is not supported", status=405)
        with self.locker.lock(upload_id):
            info = self.store.get(upload_id)
            self._terminate(info, "terminated")
        return TusResponse(204, self._base_headers())

    def _terminate(self, info: UploadInfo, reason: str) -> None:
        self.store.terminate(info.id, reason)
        if not info.is_partial:
            self.hooks.fire("terminated", info, reason)

    # -- expiration -------------------------------------------------------------------------------
    def expire(self, tombstone_days: float = 7.0) -> list[str]:
        """Remove unfinished uploads past their expiry (and old tombstones). Returns the removed ids."""
        removed = []
        now = time.time()
        for upload_id in list(self.store.list_ids()):
            try:
                info = self.store.get(upload_id)
            except (NotFound, Gone):
                continue
            if info.completed and not info.is_partial or info.expires_at is None or info.expires_at >= now:
                continue
            try:
                with self.locker.lock(upload_id):
                    info = self.store.get(upload_id)
                    if info.expires_at is not None and info.expires_at < time.time():
                        self._terminate(info, "expired")
                        removed.append(upload_id)
            except TusError:
                continue  # busy or already gone: next sweep
        if hasattr(self.store, "list_tombstones"):
            for upload_id, since in list(self.store.list_tombstones()):
                if since < now - tombstone_days * 86400:
                    self.store.purge(upload_id)
        return removed
