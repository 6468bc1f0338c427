"""What a hostile or broken tus client gets (SPEC §3 errors, §8 bad input), over raw HTTP against gunicorn.

A table of bad requests. Each is sent byte for byte on a raw socket (no client library to tidy it up) to one
gunicorn started as in the Procfile for this module, and must get:

- exactly the 4xx that SPEC §3 names for it (or, where the HTTP layer refuses the bytes before the app sees
  them, the status gunicorn gives), never a 5xx;
- a non-empty body that says what was wrong (checked for a telling word; HEAD answers have no body);
- no file or directory created anywhere outside MEDIA_ROOT (the test's temp tree, where a `../` would land,
  and the project's default `media/` are snapshotted around the request);
- nothing half-written: a refused request leaves the uploads directory (paths and sizes) and the `file` table
  exactly as they were;
- no harm to the good uploads in progress it may have been aimed at: every case starts two of them (one with a
  length, one with a deferred length), and afterwards their offsets are unchanged, they are finished, and their
  SHA-256 (database) and bytes (disk) are exactly what the good client sent.

The server is shared by the cases of this module (one gunicorn start instead of one per case); every case
uses its own uploads, so they do not see each other. The server must still answer /healthz after each case.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import requests
from sqlalchemy import create_engine, text

from rawhttp import Reply
from treewatch import paths_outside, sizes_below
from conftest import ROOT, TEST_REDIS_URL, TUS, LiveServer, settings_env
from gateway.config import Settings

MAX_SIZE = 64 * 1024 ** 2
OCTET = "application/offset+octet-stream"
UPLOAD_FILE = re.compile(r"^uploads/([A-Za-z0-9_-]{2})/([A-Za-z0-9_-]{22,64})(\.info|\.gone|\.pending)?$")
SENTINEL = "pwned-" + secrets.token_hex(4)  # what a path-traversal attempt would try to create
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


# -- the server ------------------------------------------------------------------------------------------
@dataclass
class Hostile:
    server: LiveServer
    settings: Settings
    engine: object
    watched: list[Path]  # trees where no file may appear (everything around MEDIA_ROOT)
    ignored: set[Path]  # inside them: MEDIA_ROOT itself and the server's log

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, database_url):
    base = tmp_path_factory.mktemp("bad-input")
    # MEDIA_ROOT sits a few levels down in the watched tree, so a `../../..` out of it lands where we look.
    media_root = base / "srv" / "data" / "media"
    settings = Settings.from_env({
        "INSTANCE_DIR": str(base / "srv" / "instance"), "MEDIA_ROOT": str(media_root),
        "DATABASE_URL": database_url, "REDIS_URL": TEST_REDIS_URL, "UPLOAD_MAX_SIZE": str(MAX_SIZE),
    })
    log = base / "gunicorn.log"
    server = LiveServer(env=settings_env(settings), workers=2, log_path=log)
    try:
        server.start()
    except Exception:
        server.stop()  # never leave a half-started gunicorn behind
        raise
    engine = create_engine(database_url)
    yield Hostile(server=server, settings=settings, engine=engine,
                  watched=[tmp_path_factory.getbasetemp(), ROOT / "media"], ignored={media_root, log})
    server.stop()
    engine.dispose()


# -- raw HTTP ------------------------------------------------------------------------------------------
@dataclass
class Req:
    method: str
    target: str  # the request-target, sent exactly as given
    headers: list  # (name, value) pairs, str or bytes, sent verbatim in this order
    body: bytes = b""

    def header(self, name: str):
        for key, value in self.headers:
            if isinstance(key, str) and key.lower() == name.lower():
                return value
        return None


def _bytes(value) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def send(env: Hostile, req: Req) -> Reply:
    """Send the request as written (Content-Length added only when no framing header is given)."""
    lines = [_bytes(f"{req.method} {req.target} HTTP/1.1"), _bytes(f"Host: {env.host}"), b"Connection: close"]
    lines += [_bytes(name) + b": " + _bytes(value) for name, value in req.headers]
    if req.header("Content-Length") is None and req.header("Transfer-Encoding") is None and (
            req.body or req.method in ("POST", "PATCH")):
        lines.append(_bytes(f"Content-Length: {len(req.body)}"))
    data = b"\r\n".join(lines) + b"\r\n\r\n" + req.body
    with socket.create_connection(("127.0.0.1", env.server.port), timeout=30) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer before reading a body it refuses; its answer is still there to read
        answer = http.client.HTTPResponse(sock, method=req.method)
        answer.begin()
        try:
            body = answer.read()
        except http.client.IncompleteRead as cut:
            body = cut.partial
        return Reply(answer.status, answer.headers, body)


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"


def b64(text_or_bytes) -> str:
    raw = text_or_bytes if isinstance(text_or_bytes, bytes) else text_or_bytes.encode()
    return base64.b64encode(raw).decode()


# -- good uploads, and the state we watch ---------------------------------------------------------------
def upload_id(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[1]


def data_file(env: Hostile, uid: str) -> Path:
    return env.settings.uploads_dir / uid[:2] / uid


def file_rows(env: Hostile) -> dict:
    with env.engine.connect() as conn:
        rows = conn.execute(text('SELECT id, state, length, "offset", sha256, filename FROM file')).all()
    return {row[0]: tuple(row) for row in rows}


def file_row(env: Hostile, uid: str):
    return file_rows(env).get(uid)


def media_files(env: Hostile) -> dict[str, int]:
    """Every file and directory below MEDIA_ROOT, with its size."""
    return sizes_below(env.settings.media_root, with_dirs=True)


def outside_tree(env: Hostile) -> set[str]:
    return paths_outside(env.watched, env.ignored)


class GoodUpload:
    """An honest client's upload, part-way through when the bad request comes."""

    def __init__(self, env: Hostile, length: int, first: int, deferred: bool = False):
        self.env = env
        self.data = os.urandom(length)
        self.deferred = deferred
        headers = {**TUS, "Upload-Metadata": "filename " + b64("good.pdf") + ",filetype " + b64("application/pdf")}
        headers.update({"Upload-Defer-Length": "1"} if deferred else {"Upload-Length": str(length)})
        answer = requests.post(env.url + "/files/", headers=headers, timeout=30)
        assert answer.status_code == 201, answer.text
        self.url = answer.headers["Location"]
        self.id = upload_id(self.url)
        self.path = f"/files/{self.id}/"
        self.sent = 0
        self._patch(first)

    def _patch(self, size: int, final: bool = False) -> None:
        headers = {**TUS, "Content-Type": OCTET, "Upload-Offset": str(self.sent)}
        if final and self.deferred:
            headers["Upload-Length"] = str(len(self.data))
        answer = requests.patch(self.url, data=self.data[self.sent:self.sent + size], headers=headers, timeout=30)
        assert answer.status_code == 204, f"the good client's PATCH failed: {answer.status_code} {answer.text}"
        self.sent += size
        assert answer.headers["Upload-Offset"] == str(self.sent)

    def check_intact_and_finish(self) -> None:
        head = requests.head(self.url, headers=TUS, timeout=30)
        assert head.status_code == 200, f"good upload {self.id} answers HEAD with {head.status_code}"
        assert head.headers["Upload-Offset"] == str(self.sent), "the bad request moved a good upload's offset"
        if self.deferred:
            assert head.headers.get("Upload-Defer-Length") == "1" and "Upload-Length" not in head.headers
        else:
            assert head.headers["Upload-Length"] == str(len(self.data))
        self._patch(len(self.data) - self.sent, final=True)
        head = requests.head(self.url, headers=TUS, timeout=30)
        assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(len(self.data))
        row = file_row(self.env, self.id)
        assert row is not None and row[1] == "complete" and row[2] == len(self.data)
        assert row[4] == hashlib.sha256(self.data).hexdigest(), "a good upload's SHA-256 is wrong"
        assert data_file(self.env, self.id).read_bytes() == self.data, "a good upload's bytes on disk are wrong"


class Ctx:
    """What a case's request may refer to: two good uploads in progress, and whatever else it `needs`."""

    def __init__(self, env: Hostile):
        self.env = env
        self.victim = GoodUpload(env, length=200_003, first=70_001)
        self.deferred = GoodUpload(env, length=50_000, first=20_000, deferred=True)
        self.made: dict[str, str] = {}  # need -> upload id
        self.part_data: dict[str, bytes] = {}

    def _create(self, headers: dict, body: bytes = b"") -> str:
        headers = {**TUS, **headers}
        if body:
            headers["Content-Type"] = OCTET
        answer = requests.post(self.env.url + "/files/", headers=headers, data=body, timeout=60)
        assert answer.status_code == 201, answer.text
        return upload_id(answer.headers["Location"])

    def make(self, need: str) -> None:
        if need in ("part", "part2", "big_part", "deleted_part"):
            data = os.urandom(1024 * 1024 + 1 if need == "big_part" else 1000 + len(need))
            self.made[need] = self._create({"Upload-Concat": "partial", "Upload-Length": str(len(data))}, data)
            self.part_data[need] = data
            if need == "deleted_part":
                assert requests.delete(self.url(need), headers=TUS, timeout=30).status_code == 204
        elif need == "unfinished_part":
            self.made[need] = self._create({"Upload-Concat": "partial", "Upload-Length": "1000"}, b"u" * 100)
        elif need == "plain":
            self.made[need] = self._create({"Upload-Length": "10"}, b"0123456789")
        elif need == "final":
            self.make("part")
            self.make("part2")
            self.made[need] = self._create({"Upload-Concat": f"final;{self.path('part')} {self.path('part2')}"})
        elif need == "deleted":
            self.made[need] = self._create({"Upload-Length": "10"}, b"01234")
            assert requests.delete(self.url(need), headers=TUS, timeout=30).status_code == 204
        else:
            raise AssertionError(f"unknown need {need}")

    def path(self, need: str) -> str:
        return f"/files/{self.made[need]}/"

    def url(self, need: str) -> str:
        return self.env.url + self.path(need)


# -- the corpus ------------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    status: int | tuple[int, ...]
    says: str | None  # a regex the body must contain (case-insensitive); None only for HEAD and 2xx
    request: Callable[[Ctx], Req]
    needs: tuple[str, ...] = ()
    headers: Callable[[Ctx], dict] | None = None  # exact header values the answer must carry
    creates: bool = False  # an accepted creation: one new upload (its Location) may appear
    after: Callable[[Ctx, Reply], None] | None = None


T = ("Tus-Resumable", "1.0.0")
CT = ("Content-Type", OCTET)
NOT_FOUND = r"not found|no such upload|no upload|unknown"
FAKE_ID = "A" * 22 + "bogus0000000000000000A"  # the right alphabet and length, but never handed out


def create(*headers, body: bytes = b"", version=True) -> Callable[[Ctx], Req]:
    return lambda ctx: Req("POST", "/files/", ([T] if version else []) + list(headers), body)


def patch_at(target: Callable[[Ctx], str], *, offset: Callable[[Ctx], str] | None = None, drop=(), body=b"x" * 10,
             extra=()) -> Callable[[Ctx], Req]:
    """A PATCH with all the right headers for `target` except those dropped or overridden in `extra`."""
    def build(ctx: Ctx) -> Req:
        base = {"Tus-Resumable": "1.0.0", "Content-Type": OCTET,
                "Upload-Offset": offset(ctx) if offset else str(ctx.victim.sent)}
        for name, _ in extra:
            base.pop(name, None)
        headers = [(k, v) for k, v in base.items() if k not in drop] + list(extra)
        return Req("PATCH", target(ctx), headers, body)
    return build


def victim(ctx: Ctx) -> str:
    return ctx.victim.path


def patch_victim(**kwargs) -> Callable[[Ctx], Req]:
    return patch_at(victim, **kwargs)


def patch_deferred(**kwargs) -> Callable[[Ctx], Req]:
    return patch_at(lambda ctx: ctx.deferred.path, offset=lambda ctx: str(ctx.deferred.sent), **kwargs)


def remaining(ctx: Ctx) -> int:
    return len(ctx.victim.data) - ctx.victim.sent


def victim_offset(ctx: Ctx) -> dict:
    return {"Upload-Offset": str(ctx.victim.sent)}


def digest(algorithm: str, data: bytes) -> str:
    return b64(hashlib.new(algorithm, data).digest())


def tus_version(ctx: Ctx) -> dict:
    return {"Tus-Version": "1.0.0"}


def with_version_list(reply: Reply) -> None:
    assert "1.0.0" in [v.strip() for v in reply.headers.get("Tus-Version", "").split(",")]


def concat(value: Callable[[Ctx], str], *more) -> Callable[[Ctx], Req]:
    return lambda ctx: Req("POST", "/files/", [T, ("Upload-Concat", value(ctx)), *more])


def upload_state_is(need: str, length: int):
    def after(ctx: Ctx, reply: Reply) -> None:
        head = requests.head(ctx.url(need), headers=TUS, timeout=30)
        assert head.status_code == 200
        assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(length)
        assert file_row(ctx.env, ctx.made[need])[1] == "complete"
    return after


def zero_length_completes(ctx: Ctx, reply: Reply) -> None:
    uid = upload_id(reply.headers["Location"])
    head = requests.head(ctx.env.url + f"/files/{uid}/", headers=TUS, timeout=30)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0" and head.headers["Upload-Length"] == "0"
    assert "Upload-Expires" not in head.headers, "a finished upload does not expire"
    row = file_row(ctx.env, uid)
    assert row[1:5] == ("complete", 0, 0, EMPTY_SHA256)
    assert data_file(ctx.env, uid).stat().st_size == 0


def name_is_not_a_path(ctx: Ctx, reply: Reply) -> None:
    uid = upload_id(reply.headers["Location"])
    row = file_row(ctx.env, uid)
    assert row[1] == "complete" and row[5] == SENTINEL, f"stored name {row[5]!r} should be the bare name"
    for folder in [ctx.env.settings.media_root, *ctx.env.settings.media_root.parents]:
        assert not (folder / SENTINEL).exists()


def no_header_injection(ctx: Ctx, reply: Reply) -> None:
    uid = upload_id(reply.headers["Location"])
    head = requests.head(ctx.env.url + f"/files/{uid}/", headers=TUS, timeout=30)
    assert head.status_code == 200
    assert "Set-Cookie" not in head.headers and "X-Injected" not in head.headers
    assert "\r" not in head.headers.get("Upload-Metadata", "") and "\n" not in head.headers.get("Upload-Metadata", "")
    assert "\r" not in file_row(ctx.env, uid)[5] and "\n" not in file_row(ctx.env, uid)[5]


CASES = [
    # --- Tus-Resumable ---------------------------------------------------------------------------------
    Case("tus-resumable-missing-on-post", 412, r"Tus-Resumable", create(("Upload-Length", "10"), version=False),
         headers=tus_version),
    Case("tus-resumable-wrong-version-on-post", 412, r"Tus-Resumable",
         lambda ctx: Req("POST", "/files/", [("Tus-Resumable", "0.2.2"), ("Upload-Length", "10")]),
         headers=tus_version),
    Case("tus-resumable-empty-on-post", 412, r"Tus-Resumable",
         lambda ctx: Req("POST", "/files/", [("Tus-Resumable", ""), ("Upload-Length", "10")]), headers=tus_version),
    Case("tus-resumable-missing-on-patch", 412, r"Tus-Resumable", patch_victim(drop=("Tus-Resumable",)),
         headers=tus_version),
    Case("tus-resumable-wrong-version-on-patch", 412, r"Tus-Resumable",
         patch_victim(extra=(("Tus-Resumable", "1.0"),)), headers=tus_version),
    Case("tus-resumable-wrong-version-on-head", 412, None,
         lambda ctx: Req("HEAD", ctx.victim.path, [("Tus-Resumable", "2.0.0")]), headers=tus_version),
    Case("tus-resumable-missing-on-delete", 412, r"Tus-Resumable",
         lambda ctx: Req("DELETE", ctx.victim.path, []), headers=tus_version),

    # --- Upload-Length / Upload-Defer-Length at creation ------------------------------------------------------
    Case("upload-length-negative", 400, r"Upload-Length", create(("Upload-Length", "-1"))),
    Case("upload-length-non-numeric", 400, r"Upload-Length", create(("Upload-Length", "ten"))),
    Case("upload-length-empty", 400, r"Upload-Length", create(("Upload-Length", ""))),
    Case("upload-length-beyond-int64", 400, r"Upload-Length", create(("Upload-Length", str(2 ** 63)))),
    Case("upload-length-absurdly-long-number", 400, r"Upload-Length", create(("Upload-Length", "9" * 400))),
    Case("upload-length-inner-space", 400, r"Upload-Length", create(("Upload-Length", "1 0"))),
    Case("upload-length-plus-sign", 400, r"Upload-Length", create(("Upload-Length", "+10"))),
    Case("upload-length-decimal", 400, r"Upload-Length", create(("Upload-Length", "10.0"))),
    Case("upload-length-hex", 400, r"Upload-Length", create(("Upload-Length", "0x10"))),
    Case("upload-length-non-ascii-digits", 400, r"Upload-Length", create(("Upload-Length", "١٠".encode()))),
    Case("upload-length-twice-disagreeing", 400, r"Upload-Length",
         create(("Upload-Length", "10"), ("Upload-Length", "20"))),
    Case("upload-length-over-tus-max-size", 413, r"Tus-Max-Size", create(("Upload-Length", str(MAX_SIZE + 1)))),
    Case("upload-defer-length-2", 400, r"Upload-Defer-Length", create(("Upload-Defer-Length", "2"))),
    Case("upload-defer-length-0", 400, r"Upload-Defer-Length", create(("Upload-Defer-Length", "0"))),
    Case("upload-defer-length-true", 400, r"Upload-Defer-Length", create(("Upload-Defer-Length", "true"))),
    Case("upload-length-and-defer-length", 400, r"Upload-(Defer-)?Length",
         create(("Upload-Length", "10"), ("Upload-Defer-Length", "1"))),
    Case("neither-length-nor-defer", 400, r"Upload-Length", create()),
    Case("underscore-header-is-not-upload-length", 400, r"Upload-Length", create(("Upload_Length", "10"))),

    # --- Upload-Offset on PATCH --------------------------------------------------------------------------------
    Case("upload-offset-missing", 400, r"Upload-Offset", patch_victim(drop=("Upload-Offset",))),
    Case("upload-offset-non-numeric", 400, r"Upload-Offset", patch_victim(offset=lambda ctx: "abc")),
    Case("upload-offset-negative", 400, r"Upload-Offset", patch_victim(offset=lambda ctx: "-1")),
    Case("upload-offset-empty", 400, r"Upload-Offset", patch_victim(offset=lambda ctx: "")),
    Case("upload-offset-beyond-int64", 400, r"Upload-Offset", patch_victim(offset=lambda ctx: str(2 ** 64))),
    Case("upload-offset-plus-sign", 400, r"Upload-Offset", patch_victim(offset=lambda ctx: f"+{ctx.victim.sent}")),
    Case("upload-offset-twice", 400, r"Upload-Offset",
         patch_victim(extra=(("Upload-Offset", "0"), ("Upload-Offset", "0")))),
    Case("upload-offset-past-the-length", 409, r"offset",
         patch_victim(offset=lambda ctx: str(len(ctx.victim.data) + 5)), headers=victim_offset),
    Case("upload-offset-behind-the-upload", 409, r"offset",
         patch_victim(offset=lambda ctx: str(ctx.victim.sent - 10), body=b"\0" * 10), headers=victim_offset),
    Case("upload-offset-ahead-of-the-upload", 409, r"offset",
         patch_victim(offset=lambda ctx: str(ctx.victim.sent + 1)), headers=victim_offset),

    # --- bodies past the end -----------------------------------------------------------------------------------
    Case("body-past-the-length", 413, r"past|exceed|too large|length",
         lambda ctx: patch_victim(body=os.urandom(remaining(ctx) + 1))(ctx)),
    Case("content-length-beyond-what-remains", 413, r"past|exceed|too large|length",
         patch_victim(body=b"", extra=(("Content-Length", str(10 * 1024 * 1024)),))),
    Case("chunked-body-past-the-length", 413, r"past|exceed|too large|length",
         lambda ctx: patch_victim(body=chunked(os.urandom(65536), os.urandom(remaining(ctx))),
                                  extra=(("Transfer-Encoding", "chunked"),))(ctx)),
    Case("creation-with-upload-body-past-the-length", 413, r"past|exceed|too large|length",
         create(("Upload-Length", "5"), CT, body=b"0123456789")),
    Case("creation-with-upload-chunked-body-past-the-length", 413, r"past|exceed|too large|length",
         create(("Upload-Length", "5"), CT, ("Transfer-Encoding", "chunked"), body=chunked(b"0123", b"456789"))),
    Case("deferred-creation-with-upload-content-length-over-tus-max-size", 413,
         r"past|exceed|too large|Tus-Max-Size",
         create(("Upload-Defer-Length", "1"), CT, ("Content-Length", str(MAX_SIZE + 1)))),
    Case("deferred-content-length-over-tus-max-size", 413, r"past|exceed|too large|Tus-Max-Size",
         patch_deferred(body=b"", extra=(("Content-Length", str(MAX_SIZE)),))),
    Case("patch-bytes-onto-a-finished-upload", 413, r"past|exceed|too large|complete|length",
         patch_at(lambda ctx: ctx.path("plain"), offset=lambda ctx: "10", body=b"!"), needs=("plain",),
         after=upload_state_is("plain", 10)),

    # --- Content-Type ------------------------------------------------------------------------------------------
    Case("patch-content-type-octet-stream", 415, r"Content-Type",
         patch_victim(extra=(("Content-Type", "application/octet-stream"),))),
    Case("patch-content-type-missing", 415, r"Content-Type", patch_victim(drop=("Content-Type",))),
    Case("patch-content-type-lookalike", 415, r"Content-Type",
         patch_victim(extra=(("Content-Type", OCTET + "x"),))),
    Case("creation-with-upload-wrong-content-type", 415, r"Content-Type",
         create(("Upload-Length", "10"), ("Content-Type", "text/plain"), body=b"0123456789")),

    # --- Upload-Metadata ---------------------------------------------------------------------------------------
    Case("metadata-bad-base64", 400, r"base64",
         create(("Upload-Length", "10"), ("Upload-Metadata", "filename !!!not-base64!!!"))),
    Case("metadata-base64-without-padding", 400, r"base64",
         create(("Upload-Length", "10"), ("Upload-Metadata", "filename YQ"))),
    Case("metadata-non-ascii-key", 400, r"key",
         create(("Upload-Length", "10"), ("Upload-Metadata", "имя YQ==".encode()))),
    Case("metadata-key-with-space", 400, r"Upload-Metadata",
         create(("Upload-Length", "10"), ("Upload-Metadata", "file name YQ=="))),
    Case("metadata-key-with-slash", 400, r"key",
         create(("Upload-Length", "10"), ("Upload-Metadata", "../filename YQ=="))),
    Case("metadata-duplicate-key", 400, r"twice|duplicate",
         create(("Upload-Length", "10"), ("Upload-Metadata", "filename YQ==,filetype Yg==,filename Yw=="))),
    Case("metadata-empty-pair", 400, r"Upload-Metadata",
         create(("Upload-Length", "10"), ("Upload-Metadata", ",filename YQ=="))),
    Case("metadata-over-4-kib", 400, r"4096|4 KiB|long",
         create(("Upload-Length", "10"), ("Upload-Metadata", "filename " + b64(b"a" * 3200)))),

    # --- upload IDs that try to climb out of MEDIA_ROOT, or do not exist -------------------------------------------
    Case("id-dot-dot", 404, NOT_FOUND,
         patch_at(lambda ctx: "/files/../", offset=lambda ctx: "0")),
    Case("id-percent-encoded-dot-dot", 404, NOT_FOUND,
         patch_at(lambda ctx: "/files/%2e%2e/", offset=lambda ctx: "0")),
    Case("id-dot-dot-encoded-slash", 404, NOT_FOUND,
         patch_at(lambda ctx: f"/files/..%2f..%2f..%2f{SENTINEL}/", offset=lambda ctx: "0")),
    Case("id-fully-encoded-traversal", 404, NOT_FOUND,
         patch_at(lambda ctx: f"/files/%2e%2e%2f%2e%2e%2f%2e%2e%2f{SENTINEL}/", offset=lambda ctx: "0")),
    Case("id-backslash-traversal", 404, NOT_FOUND,
         patch_at(lambda ctx: f"/files/..%5c..%5c..%5c{SENTINEL}/", offset=lambda ctx: "0")),
    Case("id-with-nul-byte", 404, NOT_FOUND,
         patch_at(lambda ctx: f"/files/{SENTINEL}%00abcdefghijklmnopqrstuvwxyz/", offset=lambda ctx: "0")),
    Case("id-very-long", 404, NOT_FOUND,
         patch_at(lambda ctx: "/files/" + "A" * 4000 + "/", offset=lambda ctx: "0")),
    Case("id-with-dots", 404, NOT_FOUND,
         patch_at(lambda ctx: "/files/abc.def.ghi.jkl.mno.pqr.stu.vwx/", offset=lambda ctx: "0")),
    Case("id-naming-the-info-file", 404, NOT_FOUND,
         patch_at(lambda ctx: f"/files/{ctx.victim.id}.info/", offset=lambda ctx: "0")),
    Case("delete-id-naming-the-info-file", 404, NOT_FOUND,
         lambda ctx: Req("DELETE", f"/files/{ctx.victim.id}.info/", [T])),
    Case("delete-id-dot-dot", 404, NOT_FOUND,
         lambda ctx: Req("DELETE", "/files/%2e%2e/", [T])),
    # With a naive join, root/".."/"../media/uploads/XX/<id>" is the good upload's own file.
    Case("delete-traversal-onto-a-good-upload", 404, NOT_FOUND,
         lambda ctx: Req("DELETE", f"/files/..%2fmedia%2fuploads%2f{ctx.victim.id[:2]}%2f{ctx.victim.id}/", [T])),
    Case("patch-traversal-onto-a-good-upload", 404, NOT_FOUND,
         patch_at(lambda ctx: f"/files/..%2fmedia%2fuploads%2f{ctx.victim.id[:2]}%2f{ctx.victim.id}/")),
    Case("head-traversal-to-another-upload", 404, None,
         lambda ctx: Req("HEAD", f"/files/x%2f..%2f{ctx.victim.id[:2]}%2f{ctx.victim.id}/", [T])),
    Case("unknown-id-patch", 404, NOT_FOUND, patch_at(lambda ctx: f"/files/{FAKE_ID}/",
                                                                                 offset=lambda ctx: "0")),
    Case("unknown-id-head", 404, None, lambda ctx: Req("HEAD", f"/files/{FAKE_ID}/", [T])),
    Case("unknown-id-delete", 404, NOT_FOUND,
         lambda ctx: Req("DELETE", f"/files/{FAKE_ID}/", [T])),

    # --- checksum ----------------------------------------------------------------------------------------------
    Case("checksum-unsupported-algorithm", 400, r"algorithm|not supported",
         patch_victim(extra=(("Upload-Checksum", "crc32 " + b64(b"\0\0\0\0")),))),
    Case("checksum-algorithm-only", 400, r"Upload-Checksum", patch_victim(extra=(("Upload-Checksum", "sha1"),))),
    Case("checksum-digest-not-base64", 400, r"base64", patch_victim(extra=(("Upload-Checksum", "sha1 !!!!"),))),
    Case("checksum-wrong-digest-length", 400, r"digest|bytes|length",
         patch_victim(extra=(("Upload-Checksum", "sha1 " + digest("md5", b"x" * 10)),))),
    Case("checksum-mismatch-discards-the-chunk", 460, r"checksum|does not match|mismatch",
         patch_victim(body=b"y" * 1000, extra=(("Upload-Checksum", "sha256 " + digest("sha256", b"z" * 1000)),)),
         headers=None),
    Case("checksum-mismatch-on-creation-with-upload", 460, r"checksum|does not match|mismatch",
         create(("Upload-Length", "10"), CT, ("Upload-Checksum", "md5 " + digest("md5", b"nope")), body=b"0123456789")),

    # --- concatenation -----------------------------------------------------------------------------------------
    Case("concat-garbage", 400, r"Upload-Concat", concat(lambda ctx: "banana")),
    Case("concat-partial-with-suffix", 400, r"Upload-Concat", concat(lambda ctx: "partial;yes")),
    Case("concat-final-without-semicolon", 400, r"Upload-Concat", concat(lambda ctx: "final")),
    Case("concat-final-empty-list", 400, r"part|Upload-Concat", concat(lambda ctx: "final;")),
    Case("concat-final-unknown-part", 400, r"part|unknown", concat(lambda ctx: f"final;/files/{FAKE_ID}/")),
    Case("concat-final-foreign-host", 400, r"part|server",
         concat(lambda ctx: f"final;http://evil.example/files/{ctx.made['part']}/"), needs=("part",)),
    Case("concat-final-scheme-relative-foreign-host", 400, r"part|server",
         concat(lambda ctx: f"final;//evil.example/files/{ctx.made['part']}/"), needs=("part",)),
    Case("concat-final-traversal-path", 400, r"part|upload",
         concat(lambda ctx: f"final;/files/../../../{SENTINEL}/")),
    Case("concat-final-non-partial-upload", 400, r"partial",
         concat(lambda ctx: f"final;{ctx.path('part')} {ctx.path('plain')}"), needs=("part", "plain")),
    Case("concat-final-unfinished-part", 400, r"unfinished|finish",
         concat(lambda ctx: f"final;{ctx.path('part')} {ctx.path('unfinished_part')}"),
         needs=("part", "unfinished_part")),
    Case("concat-final-deleted-part", 400, r"part|gone|unknown",
         concat(lambda ctx: f"final;{ctx.path('part')} {ctx.path('deleted_part')}"), needs=("part", "deleted_part")),
    Case("concat-final-with-upload-length", 400, r"Upload-Length",
         concat(lambda ctx: f"final;{ctx.path('part')}", ("Upload-Length", "1004")), needs=("part",)),
    Case("concat-final-with-upload-defer-length", 400, r"Upload-Defer-Length|Upload-Length",
         concat(lambda ctx: f"final;{ctx.path('part')}", ("Upload-Defer-Length", "1")), needs=("part",)),
    Case("concat-final-naming-a-final-upload", 400, r"partial",
         concat(lambda ctx: f"final;{ctx.path('final')}"), needs=("final",)),
    Case("concat-partial-over-tus-max-size", 413, r"Tus-Max-Size",
         concat(lambda ctx: "partial", ("Upload-Length", str(MAX_SIZE + 1)))),
    Case("concat-final-parts-over-tus-max-size", 413, r"Tus-Max-Size|too large|exceed",
         concat(lambda ctx: "final;" + " ".join([ctx.path("big_part")] * 64)), needs=("big_part",)),
    Case("concat-final-absurdly-many-parts", 400, r"part",
         concat(lambda ctx: "final;" + " ".join(["x"] * 1001))),
    Case("concat-final-header-beyond-http-limits", 431, r"header|too large",
         concat(lambda ctx: "final;" + " ".join([ctx.path("part")] * 400)), needs=("part",)),
    Case("patch-to-a-final-upload", 403, r"final", patch_at(lambda ctx: ctx.path("final"),
                                                            offset=lambda ctx: "0", body=b"x"),
         needs=("final",), after=upload_state_is("final", 1004 + 1005)),

    # --- length changes on PATCH -------------------------------------------------------------------------------
    Case("patch-changes-upload-length-of-a-sized-upload", 400, r"Upload-Length",
         lambda ctx: patch_victim(extra=(("Upload-Length", str(len(ctx.victim.data) + 100)),))(ctx)),
    Case("deferred-length-below-its-offset", 400, r"Upload-Length|below|offset",
         lambda ctx: patch_deferred(extra=(("Upload-Length", str(ctx.deferred.sent - 1)),))(ctx)),
    Case("deferred-length-over-tus-max-size", 413, r"Tus-Max-Size|too large",
         patch_deferred(extra=(("Upload-Length", str(MAX_SIZE + 1)),))),
    Case("deferred-length-malformed", 400, r"Upload-Length", patch_deferred(extra=(("Upload-Length", "-5"),))),

    # --- terminated uploads ------------------------------------------------------------------------------------
    Case("patch-after-delete", (404, 410), r"terminated|gone|no such upload|not found|no upload",
         patch_at(lambda ctx: ctx.path("deleted"), offset=lambda ctx: "5", body=b"56789"), needs=("deleted",)),
    Case("head-after-delete", (404, 410), None, lambda ctx: Req("HEAD", ctx.path("deleted"), [T]), needs=("deleted",)),
    Case("delete-after-delete", (404, 410), r"terminated|gone|no such upload|not found|no upload",
         lambda ctx: Req("DELETE", ctx.path("deleted"), [T]), needs=("deleted",)),

    # --- X-HTTP-Method-Override --------------------------------------------------------------------------------
    Case("override-delete-without-tus-resumable", 412, r"Tus-Resumable",
         lambda ctx: Req("POST", ctx.victim.path, [("X-HTTP-Method-Override", "DELETE")]), headers=tus_version),
    Case("override-on-get-is-not-honoured", 405, r"not allowed",
         lambda ctx: Req("GET", ctx.victim.path, [T, ("X-HTTP-Method-Override", "DELETE")])),
    Case("override-to-an-unknown-method", 405, r"not allowed",
         lambda ctx: Req("POST", ctx.victim.path, [T, ("X-HTTP-Method-Override", "TRACE")])),
    Case("override-two-methods", 405, r"not allowed",
         lambda ctx: Req("POST", ctx.victim.path, [T, ("X-HTTP-Method-Override", "PATCH, DELETE")])),
    Case("override-delete-on-the-collection", 405, r"not allowed",
         lambda ctx: Req("POST", "/files/", [T, ("X-HTTP-Method-Override", "DELETE")])),
    Case("override-patch-with-wrong-content-type", 415, r"Content-Type",
         lambda ctx: Req("POST", ctx.victim.path, [T, ("X-HTTP-Method-Override", "PATCH"),
                                                   ("Content-Type", "text/plain"),
                                                   ("Upload-Offset", str(ctx.victim.sent))], b"x" * 10)),
    Case("override-patch-at-a-wrong-offset", 409, r"offset",
         lambda ctx: Req("POST", ctx.victim.path, [T, ("X-HTTP-Method-Override", "PATCH"), CT,
                                                   ("Upload-Offset", "0")], b"x" * 10), headers=victim_offset),
    Case("post-to-an-upload", 405, r"not allowed",
         lambda ctx: Req("POST", ctx.victim.path, [T, ("Upload-Length", "10")])),
    Case("put-to-an-upload", 405, r"not allowed", lambda ctx: Req("PUT", ctx.victim.path, [T], b"x" * 10)),

    # --- the HTTP layer: header injection, smuggling, broken framing ---------------------------------------------
    Case("header-value-with-nul", 400, r"header",
         create(("Upload-Length", "10"), ("Upload-Metadata", b"filename YQ==\0,filetype Yg=="))),
    Case("header-value-with-bare-cr", 400, r"header",
         create(("Upload-Length", b"10\rX-Injected: 1"))),
    Case("header-obsolete-line-folding", 400, r"fold|header",
         create(("Upload-Length", b"1\r\n 0"))),
    Case("header-name-with-space", 400, r"header",
         create(("Upload-Length ", "10"))),
    Case("smuggling-content-length-and-chunked", 400, r"header|content-length|transfer-encoding",
         lambda ctx: patch_victim(body=chunked(b"abc"), extra=(("Content-Length", "3"),
                                                               ("Transfer-Encoding", "chunked")))(ctx)),
    Case("content-length-negative", 400, r"header|content-length",
         patch_victim(body=b"", extra=(("Content-Length", "-1"),))),
    Case("content-length-twice-disagreeing", 400, r"header|content-length",
         patch_victim(body=b"xx", extra=(("Content-Length", "1"), ("Content-Length", "2")))),
    Case("pipelined-delete-after-connection-close", 409, r"offset",
         lambda ctx: patch_victim(offset=lambda c: "0", body=f"DELETE {ctx.victim.path} HTTP/1.1\r\nHost: x\r\n"
                                  "Tus-Resumable: 1.0.0\r\n\r\n".encode(), extra=(("Content-Length", "0"),))(ctx),
         headers=victim_offset),
    Case("patch-malformed-chunked-body", 400, r"chunk|body|malformed",
         patch_victim(body=b"zz\r\nabc\r\n0\r\n\r\n", extra=(("Transfer-Encoding", "chunked"),))),
    Case("creation-with-upload-malformed-chunked-body", 400, r"chunk|body|malformed",
         create(("Upload-Length", "10"), CT, ("Transfer-Encoding", "chunked"), body=b"zz\r\nabc\r\n0\r\n\r\n")),
    Case("malformed-chunk-with-checksum", 400, r"chunk|body|malformed|checksum|cut",
         patch_victim(body=b"3\r\nabcXX\r\n0\r\n\r\n", extra=(("Transfer-Encoding", "chunked"),
                                                              ("Upload-Checksum", "sha1 " + digest("sha1", b"abc"))))),

    # --- accepted, but must do no harm ---------------------------------------------------------------------------
    Case("zero-length-upload-is-complete-at-once", 201, None, create(("Upload-Length", "0")), creates=True,
         after=zero_length_completes),
    Case("filename-metadata-that-is-a-path", 201, None,
         create(("Upload-Length", "3"), CT, ("Upload-Metadata", "filename " + b64(f"../../../../{SENTINEL}")),
                body=b"abc"), creates=True, after=name_is_not_a_path),
    Case("filename-metadata-with-crlf", 201, None,
         create(("Upload-Length", "3"), CT, ("Upload-Metadata", "filename " + b64("a.pdf\r\nSet-Cookie: x=1\r\n"
                                                                                      "X-Injected: 1")), body=b"abc"),
         creates=True, after=no_header_injection),
]


def test_corpus_is_big_enough():
    assert len(CASES) >= 45
    assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_request(hostile, case):
    ctx = Ctx(hostile)
    for need in case.needs:
        if need not in ctx.made:
            ctx.make(need)
    req = case.request(ctx)

    media_before, rows_before, outside_before = media_files(hostile), file_rows(hostile), outside_tree(hostile)
    reply = send(hostile, req)

    # The answer: the exact status, a body that says what was wrong, the headers the protocol requires.
    assert reply.status < 500, f"{reply.status} {reply.text[:500]}"
    expected = case.status if isinstance(case.status, tuple) else (case.status,)
    assert reply.status in expected, f"expected {case.status}, got {reply.status}: {reply.text[:500]}"
    if reply.status >= 400 and req.method != "HEAD":
        assert reply.body.strip(), "an error must say what was wrong"
    if case.says:
        assert re.search(case.says, reply.text, re.I), f"body does not say /{case.says}/: {reply.text[:500]!r}"
    if case.headers:
        for name, value in case.headers(ctx).items():
            if name == "Tus-Version":
                with_version_list(reply)
            else:
                assert reply.headers.get(name) == value, f"{name}: {reply.headers.get(name)!r}, want {value!r}"

    # Nothing outside MEDIA_ROOT; in the uploads directory, only upload files, each in its own folder.
    assert outside_tree(hostile) - outside_before == set(), "a file appeared outside MEDIA_ROOT"
    media_after = media_files(hostile)
    for path in media_after:
        if path.startswith("uploads/") and not re.match(r"^uploads/[A-Za-z0-9_-]{2}$", path):
            match = UPLOAD_FILE.match(path)
            assert match and match.group(2)[:2] == match.group(1), f"stray file in the uploads directory: {path}"

    # Nothing half-written: a refused request leaves files and rows exactly as they were.
    rows_after = file_rows(hostile)
    if case.creates:
        new_id = upload_id(reply.headers["Location"])
        assert set(rows_after) - set(rows_before) == {new_id}
        assert {p for p in media_after if p not in media_before and not re.match(r"^uploads/..$", p)} == \
            {f"uploads/{new_id[:2]}/{new_id}", f"uploads/{new_id[:2]}/{new_id}.info"}
    else:
        assert {p: s for p, s in media_after.items() if s >= 0} == {p: s for p, s in media_before.items() if s >= 0}, \
            "the refused request changed the uploads on disk"
        assert rows_after == rows_before, "the refused request changed the file table"

    if case.after:
        case.after(ctx, reply)
    # The good uploads the bad request may have been aimed at are unharmed, and finish byte for byte.
    ctx.victim.check_intact_and_finish()
    ctx.deferred.check_intact_and_finish()
    assert requests.get(hostile.url + "/healthz", timeout=10).status_code == 200
