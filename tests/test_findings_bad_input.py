"""What bad input gets at the analysis and findings endpoints (SPEC §4, §6, §8), over raw HTTP against gunicorn.

A table of bad requests, each sent byte for byte on a raw socket to one gunicorn started as in the Procfile for
this module, against a fresh context of its own (a finished upload, an analysis in `processing` with a live
refer key, a user comment, an AI comment, and whatever else the case `needs`). Each must get:

- exactly the 4xx named in the table, never a 5xx;
- a JSON object whose `error` says what was wrong (checked against a pattern: the field, or the reason);
- nothing half-written: the rows of `analysis`, `comment`, `recommendation`, `violation_count`,
  `refer_session`, `refer_key` and `file` are exactly as before (so every analysis's status is unchanged);
- no file written below MEDIA_ROOT (no result, no leftover `.part`), and nothing created anywhere outside it
  (the test's temp tree, where a `../` would land, and the project's `media/` are snapshotted around the request);
- a server that still answers `/healthz`.

What a field must be, by SPEC §6: `text` (required, ≤ 20000 characters), `location` (≤ 255), `severity` and
`rating` one of `----`, `None`, `mild`, `moderate`, `severe`; `age_rating` and `target_audience` one of `0+` …
`18+`; `count` a whole number 0 … 1000000 (not a bool, float or string); `violation_id` the integer id of a
catalog entry; `author` `User` or `AI`; `user_comment_id` a User comment of the same analysis; JSON bodies at
most 1 MiB (413 beyond). Unknown analyses and refer keys answer 404, dead refer keys 410. Text must be storable
on every database the gateway supports, so a NUL character is refused (400) rather than crashing PostgreSQL.
"""
from __future__ import annotations

import http.client
import json
import re
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import redis as redis_lib
import urllib3
from sqlalchemy import select

from rawhttp import Reply
from treewatch import paths_outside, sizes_below
from conftest import empty_tables, ROOT, TEST_REDIS_URL, TUS, LiveServer, settings_env
from gateway.config import Settings

MAX_SIZE = 4 * 1024 ** 2  # UPLOAD_MAX_SIZE of this module's server: also the result file limit
MIB = 1024 * 1024
CATALOG = {"profanity": 1, "violence": 3, "flirting": 6}


# -- the server ------------------------------------------------------------------------------------------
@dataclass
class Bench:
    server: LiveServer
    settings: Settings
    watched: list[Path]
    ignored: set[Path]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.settings.analyzer_token


@pytest.fixture(scope="module")
def bench(tmp_path_factory, database_url):
    base = tmp_path_factory.mktemp("findings-bad-input")
    media_root = base / "srv" / "data" / "media"  # a few levels down, so a `../../..` lands where we look
    settings = Settings.from_env({
        "INSTANCE_DIR": str(base / "srv" / "instance"), "MEDIA_ROOT": str(media_root),
        "DATABASE_URL": database_url, "REDIS_URL": TEST_REDIS_URL, "UPLOAD_MAX_SIZE": str(MAX_SIZE),
    })
    empty_tables(database_url)
    redis_lib.Redis.from_url(TEST_REDIS_URL).flushdb()

    from gateway import create_app
    from gateway.extensions import db
    from gateway.models import BasisViolation
    app = create_app(settings)
    context = app.app_context()
    context.push()
    db.session.add_all([
        BasisViolation(id=CATALOG["profanity"], code="profanity", name="Нецензурная лексика", name_en="Profanity",
                       age_marks="16+ / 18+", age_min="16+", age_max="18+"),
        BasisViolation(id=CATALOG["violence"], code="violence", name="Физическое насилие",
                       name_en="Physical violence", age_marks="16+ / 18+", age_min="16+", age_max="18+"),
        BasisViolation(id=CATALOG["flirting"], code="flirting", name="Флирт / намёки", name_en="Flirting",
                       age_marks="12+ / 16+", age_min="12+", age_max="16+")])
    db.session.commit()
    db.session.remove()

    log = base / "gunicorn.log"
    env = dict(settings_env(settings), REFER_LIFETIME_SECONDS="3600", REFER_ROTATION_SECONDS="3600")
    server = LiveServer(env=env, workers=2, log_path=log)
    try:
        server.start()
        yield Bench(server=server, settings=settings, watched=[tmp_path_factory.getbasetemp(), ROOT / "media"],
                    ignored={media_root, log})
    finally:
        server.stop()
        db.session.remove()
        db.engine.dispose()
        context.pop()


# -- raw HTTP ------------------------------------------------------------------------------------------
def send(bench: Bench, method: str, target: str, body: bytes = b"", headers: dict | None = None,
         chunks: list[bytes] | None = None) -> Reply:
    """Send the request as written: the target is not normalized, the body not re-encoded."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{bench.server.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if chunks is not None:
        lines.append("Transfer-Encoding: chunked")
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    elif body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    data = "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", bench.server.port), timeout=60) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer before reading a body it refuses; its answer is still there to read
        answer = http.client.HTTPResponse(sock, method=method)
        answer.begin()
        try:
            payload = answer.read()
        except http.client.IncompleteRead as cut:
            payload = cut.partial
        return Reply(answer.status, answer.headers, payload)


def as_json(value) -> bytes:
    return json.dumps(value).encode()  # ASCII with \u escapes: lone surrogates and NULs travel as sent


def bearer(bench: Bench) -> dict:
    return {"Authorization": f"Bearer {bench.token}"}


def post_json(bench: Bench, path: str, value, auth: dict | None = None) -> Reply:
    return send(bench, "POST", path, as_json(value), {"Content-Type": "application/json",
                                                      **(bearer(bench) if auth is None else auth)})


def upload(bench: Bench, data: bytes, filename: str = "script.txt") -> str:
    import base64
    meta = "filename " + base64.b64encode(filename.encode()).decode()
    answer = send(bench, "POST", "/files/", data, {**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta,
                                                   "Content-Type": "application/offset+octet-stream"})
    assert answer.status == 201, answer.text
    assert answer.headers["Upload-Offset"] == str(len(data))
    return answer.headers["Location"].rstrip("/").rsplit("/", 1)[1]


class BrowserSession:
    """The uploader's page: the session cookie and the CSRF token bound to it."""

    def __init__(self, bench: Bench):
        answer = send(bench, "GET", "/csrftoken/")
        assert answer.status == 200
        self.cookie = answer.headers["Set-Cookie"].split(";", 1)[0]
        self.headers = {"Cookie": self.cookie, "X-CSRFToken": json.loads(answer.body)["csrfToken"]}


# -- the database, the disk ----------------------------------------------------------------------------
def fresh():
    from gateway.extensions import db
    db.session.remove()
    return db.session


def snapshot() -> dict:
    """Every row the findings endpoints may write, in full."""
    from gateway.models import Analysis, Comment, File, Recommendation, ReferKey, ReferSession, ViolationCount
    session = fresh()
    tables = {
        "analysis": select(Analysis.id, Analysis.file_id, Analysis.status, Analysis.reason, Analysis.target_audience,
                           Analysis.title, Analysis.suggested_age_rating, Analysis.result_key,
                           Analysis.result_filename, Analysis.result_size, Analysis.result_sha256,
                           Analysis.updated_at),
        "comment": select(Comment.id, Comment.analysis_id, Comment.author, Comment.text, Comment.violation_id,
                          Comment.severity, Comment.count, Comment.location, Comment.quote),
        "recommendation": select(Recommendation.id, Recommendation.analysis_id, Recommendation.text,
                                 Recommendation.rating, Recommendation.age_rating, Recommendation.user_comment_id,
                                 Recommendation.updated_at),
        "violation_count": select(ViolationCount.id, ViolationCount.recommendation_id, ViolationCount.violation_id,
                                  ViolationCount.count, ViolationCount.severity),
        "refer_session": select(ReferSession.id, ReferSession.analysis_id, ReferSession.state,
                                ReferSession.current_key_id, ReferSession.frozen_key_id, ReferSession.ends_at,
                                ReferSession.next_rotation_at, ReferSession.handoff_state),
        "refer_key": select(ReferKey.id, ReferKey.session_id),
        "file": select(File.id, File.state, File.length, File.offset, File.sha256, File.submissions),
    }
    rows = {name: sorted(tuple(row) for row in session.execute(query).all()) for name, query in tables.items()}
    fresh()
    return rows


def media_files(bench: Bench) -> dict[str, int]:
    """Every file below MEDIA_ROOT with its size (directories may come and go: an empty one is harmless)."""
    return sizes_below(bench.settings.media_root, with_dirs=False)


def outside_tree(bench: Bench) -> set[str]:
    return paths_outside(bench.watched, bench.ignored)


# -- a case's context -----------------------------------------------------------------------------------------
class Ctx:
    """A finished upload with one analysis in `processing` (live refer key), a User comment and an AI comment."""

    def __init__(self, bench: Bench):
        self.bench = bench
        self.file_id = upload(bench, "ИНТ. КУХНЯ — НОЧЬ\nОн ругается.\n".encode() * 20, "сценарий.txt")
        self.analysis_id = self.submit(self.file_id, comment="Проверьте сцену 2")
        self.refer = self.current_key(self.analysis_id)
        self.user_comment_id = self.comment_ids(self.analysis_id, "User")[0]
        answer = post_json(bench, "/comments/", {"analysis_id": self.analysis_id, "author": "AI", "text": "Ругань",
                                                 "violation_id": CATALOG["profanity"], "severity": "mild",
                                                 "count": 2})
        assert answer.status == 201, answer.text
        self.ai_comment_id = json.loads(answer.body)["id"]

    # helpers
    def submit(self, file_id: str, **fields) -> int:
        answer = post_json(self.bench, "/cinema/", {"file_id": file_id, "target_audience": "12+", **fields})
        assert answer.status == 201, answer.text
        return json.loads(answer.body)["id"]

    @staticmethod
    def current_key(analysis_id: int) -> str:
        from gateway.models import ReferKey, ReferSession
        session = fresh()
        row = session.scalars(select(ReferSession).where(ReferSession.analysis_id == analysis_id)
                              .order_by(ReferSession.id.desc())).first()
        key = session.get(ReferKey, row.current_key_id).key
        fresh()
        return key

    @staticmethod
    def comment_ids(analysis_id: int, author: str) -> list[int]:
        from gateway.models import Comment
        ids = list(fresh().scalars(select(Comment.id).where(Comment.analysis_id == analysis_id,
                                                            Comment.author == author).order_by(Comment.id)))
        fresh()
        return ids

    def expire(self) -> None:
        """The main analysis's session outlives REFER_LIFETIME_SECONDS; the real expiry job ends it."""
        from gateway import refer
        from gateway.models import ReferSession
        session = fresh()
        session.execute(ReferSession.__table__.update().where(ReferSession.analysis_id == self.analysis_id)
                        .values(ends_at=time.time() - 1))
        session.commit()
        refer.expire_due()
        fresh()
        assert self.status(self.analysis_id) == "error"

    @staticmethod
    def status(analysis_id: int) -> str:
        from gateway.models import Analysis
        status = fresh().get(Analysis, analysis_id).status
        fresh()
        return status

    def delete_upload(self, file_id: str) -> None:
        answer = send(self.bench, "DELETE", f"/files/{file_id}/", headers=TUS)
        assert answer.status == 204, answer.text

    def fill(self, file_id: str) -> None:
        """Open analyses up to REFER_MAX_SESSIONS (10) for the file."""
        from gateway import refer
        open_now = refer.open_analyses(file_id)
        fresh()
        for _ in range(10 - open_now):
            self.submit(file_id)

    # what a case may need
    def prepare(self, needs: tuple[str, ...]) -> None:
        for need in needs:
            getattr(self, "need_" + need)()

    def need_other(self) -> None:
        """Another file, with an analysis and a User comment of its own."""
        self.other_file_id = upload(self.bench, b"EXT. ROAD - DAY\n")
        self.other_analysis_id = self.submit(self.other_file_id, comment="Другой фильм")
        self.other_user_comment_id = self.comment_ids(self.other_analysis_id, "User")[0]

    def need_recommended(self) -> None:
        answer = post_json(self.bench, "/recommend/", {
            "analysis_id": self.analysis_id, "text": "Рекомендуется 16+", "rating": "moderate", "age_rating": "16+",
            "user_comment_id": self.user_comment_id,
            "violations": [{"violation_id": CATALOG["profanity"], "count": 2, "severity": "mild"}]})
        assert answer.status == 201, answer.text

    def need_dead(self) -> None:
        self.expire()  # self.refer is now the key of an expired session

    def need_error(self) -> None:
        self.expire()

    def need_deleted(self) -> None:
        self.deleted_file_id = upload(self.bench, b"INT. GONE - DAY\n")
        self.delete_upload(self.deleted_file_id)

    def need_error_deleted(self) -> None:
        self.expire()
        self.delete_upload(self.file_id)

    def need_full(self) -> None:
        self.full_file_id = upload(self.bench, b"INT. CROWD - DAY\n")
        self.fill(self.full_file_id)

    def need_error_full(self) -> None:
        self.expire()
        self.fill(self.file_id)

    def need_partial(self) -> None:
        answer = send(self.bench, "POST", "/files/", b"part", {**TUS, "Upload-Concat": "partial",
                                                                "Upload-Length": "4",
                                                                "Content-Type": "application/offset+octet-stream"})
        assert answer.status == 201, answer.text
        self.partial_id = answer.headers["Location"].rstrip("/").rsplit("/", 1)[1]

    def need_browser(self) -> None:
        self.browser = BrowserSession(self.bench)


# -- the table --------------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    expect: int
    says: str  # a pattern the error must match (case-insensitive)
    request: Callable[[Ctx], Reply]
    needs: tuple[str, ...] = ()
    check: Callable[[Ctx, Reply], None] | None = None


CASES: list[Case] = []
DROP = object()


def case(id: str, expect: int, says: str, request, needs=(), check=None) -> None:
    CASES.append(Case(id, expect, says, request, tuple(needs), check))


def resolve(ctx: Ctx, template: dict) -> dict:
    body = {}
    for key, value in template.items():
        value = value(ctx) if callable(value) else value
        if value is not DROP:
            body[key] = value
    return body


def raw_post(path: str, body: bytes, content_type: str = "application/json", auth: bool = True):
    def request(ctx: Ctx) -> Reply:
        target = path(ctx) if callable(path) else path
        headers = {"Content-Type": content_type, **(bearer(ctx.bench) if auth else {})}
        return send(ctx.bench, "POST", target, body, headers)
    return request


def get(path, auth: bool = False):
    def request(ctx: Ctx) -> Reply:
        target = path(ctx) if callable(path) else path
        return send(ctx.bench, "GET", target, headers=bearer(ctx.bench) if auth else {})
    return request


# POST /comments/ (the analyzer, with its token) ---------------------------------------------------------
AI_COMMENT = {"analysis_id": lambda c: c.analysis_id, "author": "AI", "text": "Удар кулаком",
              "violation_id": CATALOG["violence"], "severity": "moderate", "count": 1, "location": "сцена 1",
              "quote": "бьёт кулаком"}


def comment(**patch):
    return lambda ctx: post_json(ctx.bench, "/comments/", resolve(ctx, {**AI_COMMENT, **patch}))


case("comment-malformed-json", 400, r"json", raw_post("/comments/", b'{"analysis_id": 1, "text": '))
case("comment-json-array", 400, r"object", raw_post("/comments/", b'[{"author": "AI", "text": "x"}]'))
case("comment-json-string", 400, r"object", raw_post("/comments/", '"Ругань"'.encode()))
case("comment-json-null", 400, r"object", raw_post("/comments/", b"null"))
case("comment-text-number", 400, r"\btext\b", comment(text=5))
case("comment-text-missing", 400, r"\btext\b", comment(text=DROP))
case("comment-text-null", 400, r"\btext\b", comment(text=None))
case("comment-text-over-20000", 400, r"\btext\b.*20000", comment(text="я" * 20001))
case("comment-text-nul-character", 400, r"\btext\b", comment(text="Ругань\u0000в сцене 1"))
case("comment-text-lone-surrogate", 400, r"\btext\b", comment(text="Ругань \ud800"))
case("comment-location-over-255", 400, r"location.*255", comment(location="x" * 256))
case("comment-location-number", 400, r"location", comment(location=12))
case("comment-quote-list", 400, r"quote", comment(quote=["бьёт"]))
case("comment-count-negative", 400, r"count", comment(count=-1))
case("comment-count-huge", 400, r"count", comment(count=10 ** 12))
case("comment-count-float", 400, r"count", comment(count=1.5))
case("comment-count-bool", 400, r"count", comment(count=True))
case("comment-count-string", 400, r"count", comment(count="3"))
case("comment-violation-unknown", 400, r"violation_id", comment(violation_id=999))
case("comment-violation-string", 400, r"violation_id", comment(violation_id="3"))
case("comment-violation-bool", 400, r"violation_id", comment(violation_id=True))
case("comment-violation-float", 400, r"violation_id", comment(violation_id=3.0))
case("comment-violation-huge", 400, r"violation_id", comment(violation_id=10 ** 30))
case("comment-severity-unknown", 400, r"severity", comment(severity="extreme"))
case("comment-severity-lowercase-none", 400, r"severity", comment(severity="none"))
case("comment-severity-list", 400, r"severity", comment(severity=["mild"]))
case("comment-author-unknown", 400, r"author", comment(author="Robot"))
case("comment-author-number", 400, r"author", comment(author=1))
case("comment-analysis-unknown", 404, r"analysis", comment(analysis_id=987654321))
case("comment-analysis-non-numeric", 400, r"analysis_id", comment(analysis_id="abc"))
case("comment-analysis-huge", 404, r"analysis", comment(analysis_id=10 ** 30))
case("comment-analysis-float", 400, r"analysis_id", comment(analysis_id=1.5))
case("comment-analysis-missing", 400, r"analysis_id", comment(analysis_id=DROP))
case("comment-refer-garbage", 404, r"refer", comment(analysis_id=DROP, refer="../../../etc/passwd"))
case("comment-refer-number", 400, r"refer", comment(analysis_id=DROP, refer=12345))
case("comment-refer-dead", 410, r"expired|replaced", comment(analysis_id=DROP, refer=lambda c: c.refer),
     needs=["dead"])
case("comment-body-over-1mib", 413, r"larger|too large|1048576|1 ?mib",
     comment(text="x" * (MIB + 16)))
case("comment-user-other-file", 404, r"analysis",
     lambda c: post_json(c.bench, "/comments/", {"analysis_id": c.analysis_id, "author": "User", "text": "Мне",
                                                 "file_id": c.other_file_id}, auth=c.browser.headers),
     needs=["other", "browser"])
case("comment-user-bad-violation", 400, r"violation_id",
     lambda c: post_json(c.bench, "/comments/", {"analysis_id": c.analysis_id, "author": "User", "text": "Мне",
                                                 "violation_id": "насилие", "file_id": c.file_id},
                         auth=c.browser.headers),
     needs=["browser"])

# POST /recommend/ ----------------------------------------------------------------------------------------------
RECOMMENDATION = {"analysis_id": lambda c: c.analysis_id, "text": "Рекомендуется 18+", "rating": "severe",
                  "age_rating": "18+", "user_comment_id": lambda c: c.user_comment_id,
                  "violations": [{"violation_id": CATALOG["profanity"], "count": 3, "severity": "mild"},
                                 {"violation_id": CATALOG["violence"], "count": 1, "severity": "severe"}]}


def recommend(**patch):
    return lambda ctx: post_json(ctx.bench, "/recommend/", resolve(ctx, {**RECOMMENDATION, **patch}))


def item(**patch) -> dict:
    return {"violation_id": CATALOG["flirting"], "count": 1, "severity": "mild", **patch}


case("recommend-malformed-json", 400, r"json", raw_post("/recommend/", b'{"text": "ok", "rating": '))
case("recommend-json-array", 400, r"object", raw_post("/recommend/", b'[]'))
case("recommend-json-number", 400, r"object", raw_post("/recommend/", b'42'))
case("recommend-text-missing", 400, r"\btext\b", recommend(text=DROP))
case("recommend-text-number", 400, r"\btext\b", recommend(text=16))
case("recommend-text-over-20000", 400, r"\btext\b", recommend(text="x" * 20001))
case("recommend-rating-missing", 400, r"rating", recommend(rating=DROP))
case("recommend-rating-unknown", 400, r"rating", recommend(rating="terrible"))
case("recommend-age-rating-missing", 400, r"age_rating", recommend(age_rating=DROP))
case("recommend-age-rating-unknown", 400, r"age_rating", recommend(age_rating="21+"))
case("recommend-age-rating-number", 400, r"age_rating", recommend(age_rating=16))
case("recommend-violations-object", 400, r"violations", recommend(violations={"violation_id": 1, "count": 1}))
case("recommend-violations-string", 400, r"violations", recommend(violations="1,3"))
case("recommend-violations-items-numbers", 400, r"violations\[0\]", recommend(violations=[1, 3]))
case("recommend-violations-item-null", 400, r"violations\[1\]", recommend(violations=[item(), None]))
case("recommend-violations-duplicate", 400, r"twice|duplicate",
     recommend(violations=[item(), item(count=2)]))
case("recommend-violations-1001-items", 400, r"violations",
     recommend(violations=[item()] * 1001))
case("recommend-violation-unknown", 400, r"violation_id", recommend(violations=[item(violation_id=999)]))
case("recommend-violation-string", 400, r"violation_id", recommend(violations=[item(violation_id="6")]))
case("recommend-violation-bool", 400, r"violation_id", recommend(violations=[item(violation_id=True)]))
case("recommend-violation-missing", 400, r"violation_id", recommend(violations=[{"count": 1, "severity": "mild"}]))
case("recommend-count-negative", 400, r"count", recommend(violations=[item(count=-5)]))
case("recommend-count-huge", 400, r"count", recommend(violations=[item(count=2 ** 63)]))
case("recommend-count-float", 400, r"count", recommend(violations=[item(count=0.5)]))
case("recommend-count-bool", 400, r"count", recommend(violations=[item(count=False)]))
case("recommend-count-string", 400, r"count", recommend(violations=[item(count="2")]))
case("recommend-count-missing", 400, r"count", recommend(violations=[{"violation_id": 6, "severity": "mild"}]))
case("recommend-item-severity-unknown", 400, r"severity", recommend(violations=[item(severity="awful")]))
case("recommend-user-comment-other-analysis", 400, r"user_comment_id",
     recommend(user_comment_id=lambda c: c.other_user_comment_id), needs=["other"])
case("recommend-user-comment-is-ai", 400, r"user_comment_id", recommend(user_comment_id=lambda c: c.ai_comment_id))
case("recommend-user-comment-unknown", 400, r"user_comment_id", recommend(user_comment_id=987654321))
case("recommend-user-comment-string", 400, r"user_comment_id",
     recommend(user_comment_id=lambda c: str(c.user_comment_id)))
case("recommend-user-comment-huge", 400, r"user_comment_id", recommend(user_comment_id=10 ** 30))
case("recommend-analysis-unknown", 404, r"analysis", recommend(analysis_id=987654321))
case("recommend-analysis-non-numeric", 400, r"analysis_id", recommend(analysis_id="1; DROP TABLE analysis"))
case("recommend-refer-garbage", 404, r"refer", recommend(analysis_id=DROP, refer="..%2F..%2Fetc%2Fpasswd"))
case("recommend-refer-dead", 410, r"expired|replaced", recommend(analysis_id=DROP, refer=lambda c: c.refer),
     needs=["dead"])
case("recommend-body-over-1mib", 413, r"larger|too large|1048576|1 ?mib", recommend(text="x" * (MIB + 16)))
# Replacing an existing recommendation: a refused replacement keeps the old one and its counts intact.
case("recommend-replace-duplicate", 400, r"twice|duplicate",
     recommend(violations=[item(violation_id=3), item(violation_id=6), item(violation_id=3)]),
     needs=["recommended"])
case("recommend-replace-bad-count", 400, r"count",
     recommend(violations=[item(violation_id=3), item(violation_id=6, count=-1)]), needs=["recommended"])
case("recommend-replace-bad-user-comment", 400, r"user_comment_id",
     recommend(user_comment_id=lambda c: c.ai_comment_id), needs=["recommended"])


# POST /download/<refer>/ (the result file) ------------------------------------------------------------------
def result(body: bytes = b"report", content_type: str = "text/plain", refer=None, extra: dict | None = None,
           chunks: list[bytes] | None = None, target: str | None = None):
    def request(ctx: Ctx) -> Reply:
        key = ctx.refer if refer is None else refer(ctx)
        headers = {**bearer(ctx.bench), "Content-Type": content_type, **(extra or {})}
        return send(ctx.bench, "POST", target or f"/download/{key}/", body, headers, chunks=chunks)
    return request


def multipart(fields: dict) -> tuple[bytes, str]:
    return urllib3.encode_multipart_formdata(fields, boundary="----bad-input-" + "b" * 16)


EMPTY_FILE, EMPTY_TYPE = multipart({"file": ("report.html", b"", "text/html")})
NO_FILE, NO_FILE_TYPE = multipart({"report": ("report.html", b"<p>report</p>", "text/html")})
TEXT_FILE, TEXT_FILE_TYPE = multipart({"file": "not a file, a text field"})

case("result-empty-raw-body", 400, r"empty", result(b""))
case("result-empty-multipart-file", 400, r"empty", result(EMPTY_FILE, EMPTY_TYPE))
case("result-multipart-without-file", 400, r"\bfile\b", result(NO_FILE, NO_FILE_TYPE))
case("result-multipart-file-as-text-field", 400, r"\bfile\b", result(TEXT_FILE, TEXT_FILE_TYPE))
case("result-multipart-garbage", 400, r"\bfile\b",
     result(b"this is not multipart at all", "multipart/form-data; boundary=xyz"))
case("result-over-limit-by-length", 413, r"larger|too large", result(b"x" * (MAX_SIZE + 128 * 1024)))
case("result-over-limit-chunked", 413, r"larger|too large",
     result(chunks=[b"x" * (256 * 1024)] * (MAX_SIZE // (256 * 1024) + 2)))
case("result-refer-unknown", 404, r"refer", result(refer=lambda c: secrets.token_urlsafe(24)))
case("result-refer-is-a-file-id", 404, r"refer", result(refer=lambda c: c.file_id))
case("result-refer-dead", 410, r"expired|replaced", result(), needs=["dead"])
case("result-refer-traversal-slashes", 404, r"not found|no such",
     result(target="/download/..%2F..%2F..%2Fpwned/"))
case("result-refer-traversal-dots", 404, r"not found|no such|refer", result(target="/download/%2e%2e/"))
case("result-refer-traversal-backslashes", 404, r"refer", result(target="/download/..%5C..%5C..%5Cpwned/"))
case("result-refer-overlong", 404, r"refer", result(refer=lambda c: "A" * 4000))
case("result-refer-with-nul", 404, r"refer|not found", result(refer=lambda c: c.refer[:10] + "%00" + c.refer[10:]))

# Reads: GET /comments/, /recommend/, /cinema/<id>/ ------------------------------------------------------------
case("comments-list-analysis-non-numeric", 404, r"analysis",
     get(lambda c: f"/comments/?analysis_id=abc&file_id={c.file_id}"))
case("comments-list-analysis-missing", 404, r"analysis", get(lambda c: f"/comments/?file_id={c.file_id}"))
case("comments-list-analysis-unknown", 404, r"analysis",
     get(lambda c: f"/comments/?analysis_id=987654321&file_id={c.file_id}"))
case("comments-list-analysis-huge", 404, r"analysis",
     get(lambda c: f"/comments/?analysis_id={10 ** 30}&file_id={c.file_id}", auth=True))
case("comments-list-analysis-negative", 404, r"analysis", get("/comments/?analysis_id=-1", auth=True))
case("comments-list-wrong-file-id", 404, r"analysis",
     get(lambda c: f"/comments/?analysis_id={c.analysis_id}&file_id={c.other_file_id}"), needs=["other"])
case("recommend-show-analysis-non-numeric", 404, r"analysis",
     get(lambda c: f"/recommend/?analysis_id=1e3&file_id={c.file_id}"))
case("recommend-show-none-yet", 404, r"recommendation",
     get(lambda c: f"/recommend/?analysis_id={c.analysis_id}&file_id={c.file_id}"))
case("cinema-show-non-numeric", 404, r"not found|no such", get("/cinema/abc/", auth=True))
case("cinema-show-negative", 404, r"not found|no such", get("/cinema/-1/", auth=True))
case("cinema-show-unknown", 404, r"analysis", get("/cinema/987654321/", auth=True))
case("cinema-show-huge", 404, r"analysis|not found", get(f"/cinema/{10 ** 30}/", auth=True))
case("cinema-show-file-id-traversal", 404, r"analysis",
     get(lambda c: f"/cinema/{c.analysis_id}/?file_id=..%2F..%2F{c.file_id}"))


# POST /cinema/ ------------------------------------------------------------------------------------------------
def cinema(**patch):
    return lambda ctx: post_json(ctx.bench, "/cinema/", resolve(ctx, {
        "file_id": lambda c: c.file_id, "target_audience": "12+", "title": "Кухня", **patch}))


def cinema_form(fields: dict):
    def request(ctx: Ctx) -> Reply:
        from urllib.parse import urlencode
        return send(ctx.bench, "POST", "/cinema/", urlencode(resolve(ctx, fields)).encode(),
                    {**bearer(ctx.bench), "Content-Type": "application/x-www-form-urlencoded"})
    return request


def retry_after(ctx: Ctx, reply: Reply) -> None:
    value = reply.headers.get("Retry-After", "")
    assert value.isdigit() and int(value) >= 1, f"Retry-After {value!r}"


case("cinema-malformed-json", 400, r"json", raw_post("/cinema/", b'{"file_id": "abc", '))
case("cinema-json-array", 400, r"object", raw_post("/cinema/", b'["file_id"]'))
case("cinema-file-id-missing", 400, r"file_id", cinema(file_id=DROP))
case("cinema-file-id-number", 400, r"file_id", cinema(file_id=12345))
case("cinema-file-id-unknown", 404, r"file", cinema(file_id=lambda c: secrets.token_urlsafe(24)))
case("cinema-file-id-traversal", 404, r"file", cinema(file_id="../../../etc/passwd"))
case("cinema-file-id-overlong", 404, r"file", cinema(file_id="A" * 5000))
case("cinema-file-id-partial-upload", 404, r"file", cinema(file_id=lambda c: c.partial_id), needs=["partial"])
case("cinema-file-id-deleted", 409, r"terminated|upload again", cinema(file_id=lambda c: c.deleted_file_id),
     needs=["deleted"])
case("cinema-11th-open-analysis", 429, r"retry", cinema(file_id=lambda c: c.full_file_id), needs=["full"],
     check=retry_after)
case("cinema-target-audience-unknown", 400, r"target_audience", cinema(target_audience="21+"))
case("cinema-target-audience-number", 400, r"target_audience", cinema(target_audience=12))
case("cinema-target-audience-form", 400, r"target_audience",
     cinema_form({"file_id": lambda c: c.file_id, "target_audience": "PG-13"}))
case("cinema-title-over-255", 400, r"title", cinema(title="x" * 256))
case("cinema-title-list", 400, r"title", cinema(title=["Кухня"]))
case("cinema-comment-over-10000", 400, r"comment", cinema(comment="x" * 10001))
case("cinema-comment-nul-character", 400, r"comment", cinema(comment="a\u0000b"))
case("cinema-body-over-1mib", 413, r"larger|too large|1048576|1 ?mib", cinema(padding="x" * (MIB + 16)))


# POST /cinema/<id>/refer/ -----------------------------------------------------------------------------------------
def restart(path=None):
    def request(ctx: Ctx) -> Reply:
        target = path(ctx) if callable(path) else (path or f"/cinema/{ctx.analysis_id}/refer/")
        return send(ctx.bench, "POST", target, b"", bearer(ctx.bench))
    return request


case("restart-analysis-unknown", 404, r"analysis", restart("/cinema/987654321/refer/"))
case("restart-analysis-non-numeric", 404, r"not found|no such", restart("/cinema/abc/refer/"))
case("restart-analysis-huge", 404, r"analysis|not found", restart(f"/cinema/{10 ** 30}/refer/"))
case("restart-processing", 409, r"processing", restart())
case("restart-upload-deleted", 409, r"terminated|upload", restart(), needs=["error_deleted"])
case("restart-no-free-slot", 429, r"retry", restart(), needs=["error_full"], check=retry_after)
case("restart-garbage-body-no-token", 404, r"analysis",
     lambda c: send(c.bench, "POST", f"/cinema/{c.analysis_id}/refer/", b'{"file_id": ',
                    {"Content-Type": "application/json", **c.browser.headers}), needs=["browser"])

# GET /violations/, GET /results/<key>/ ---------------------------------------------------------------------------
case("violations-post", 405, r"method", raw_post("/violations/", b"{}"))
case("violations-delete", 405, r"method",
     lambda c: send(c.bench, "DELETE", "/violations/", headers=bearer(c.bench)))
case("results-unknown-key", 404, r"result", get(lambda c: f"/results/{secrets.token_urlsafe(24)}/"))
case("results-short-key", 404, r"result", get("/results/abc/"))
case("results-overlong-key", 404, r"result", get("/results/" + "A" * 4000 + "/"))
case("results-traversal-slashes", 404, r"not found|no such", get("/results/..%2F..%2F..%2Fetc%2Fpasswd/"))
case("results-traversal-dots", 404, r"not found|no such|result", get("/results/%2e%2e/"))
case("results-traversal-backslashes", 404, r"result", get("/results/..%5C..%5Cgunicorn.log/"))
case("results-key-is-a-refer", 404, r"result", get(lambda c: f"/results/{c.refer}/"))
case("results-key-is-a-file-id", 404, r"result", get(lambda c: f"/results/{c.file_id}/"))


def test_the_table_is_big_enough():
    assert len(CASES) >= 35
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_request(bench, bad: Case):
    ctx = Ctx(bench)
    ctx.prepare(bad.needs)
    rows, media, outside = snapshot(), media_files(bench), outside_tree(bench)

    reply = bad.request(ctx)

    assert reply.status < 500, f"{bad.id}: server error {reply.status}: {reply.text[:500]}"
    assert reply.status == bad.expect, f"{bad.id}: expected {bad.expect}, got {reply.status}: {reply.text[:500]}"
    assert reply.headers.get("Content-Type", "").startswith("application/json"), \
        f"{bad.id}: not JSON: {reply.headers.get('Content-Type')} {reply.text[:200]}"
    body = json.loads(reply.body)
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip(), body
    assert re.search(bad.says, body["error"], re.IGNORECASE | re.DOTALL), \
        f"{bad.id}: the error {body['error']!r} does not say /{bad.says}/"
    assert bench.token not in reply.text and ctx.refer not in reply.text
    if bad.check:
        bad.check(ctx, reply)

    # Nothing half-written, nothing on disk, nothing outside MEDIA_ROOT.
    assert snapshot() == rows, f"{bad.id}: a refused request changed the database"
    assert media_files(bench) == media, f"{bad.id}: a refused request wrote below MEDIA_ROOT"
    assert outside_tree(bench) - outside == set(), f"{bad.id}: a refused request wrote outside MEDIA_ROOT"
    assert send(bench, "GET", "/healthz").status == 200


def test_result_names_never_become_paths(bench):
    """The one good request of this module: a result whose declared names try to climb out of MEDIA_ROOT is
    stored below MEDIA_ROOT/results under the server's own key, and served with a sanitized name."""
    ctx = Ctx(bench)
    outside = outside_tree(bench)
    body, content_type = multipart({"file": ("../../../../pwned-result.html", b"<p>report</p>", "text/html")})
    answer = send(bench, "POST", f"/download/{ctx.refer}/", body, {**bearer(bench), "Content-Type": content_type})
    assert answer.status == 201, answer.text
    assert outside_tree(bench) - outside == set()
    stored = [path for path in media_files(bench) if path.startswith("results/")]
    assert len(stored) == 1 and ".." not in stored[0]
    result_path = "/" + json.loads(answer.body)["result_url"].split("/", 3)[3]
    fetched = send(bench, "GET", result_path)
    assert fetched.status == 200 and fetched.body == b"<p>report</p>"
    disposition = fetched.headers["Content-Disposition"]
    assert "/" not in disposition.split("filename=", 1)[1].split(";")[0] and "%2F" not in disposition
    assert Ctx.status(ctx.analysis_id) == "ready"
