"""Schemathesis against the live gateway (gunicorn, as the Procfile runs it), driven by the gateway's own
`/swagger.json`: every documented operation gets generated requests, valid (positive) and invalid (negative),
and every answer must be no server error and exactly what the spec says (status, content type, headers, body
schema).

Three callers, one test each: anonymous, a browser (session cookie + `X-CSRFToken`) and the analyzer (bearer
token). A fixture first makes real state over HTTP (a finished upload, analyses in several states, a live refer
key, a result, comments, a recommendation, an unfinished upload), and hooks let generated requests use those real
IDs some of the time, so that success paths are exercised too, not only 404s.

Bounded and deterministic: a fixed seed, derandomized generation, at most `MAX_EXAMPLES` generated requests per
operation and mode, no shrinking; event streams are read up to their first events only.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import engine
from schemathesis.engine import Status
from schemathesis.engine import events as engine_events

from conftest import browser, start_upload, upload_file

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
SEED = 20240611

# What every answer is held to. Left out of schemathesis's `all`, and why:
# - positive_data_acceptance: schema-valid requests are refused by design whenever the caller lacks the
#   capability (404 for an analysis whose file ID was not shown, 400 for a browser POST without CSRF, 409/410
#   for refer keys that rotated or froze). These refusals are documented answers, not bugs.
# - ignored_auth: re-sends an authorized request without credentials and expects 401/403; the browser
#   alternative of the same operations answers a missing CSRF token with 400 (documented), and reads are
#   capability-based (`file_id`), so "no credentials" is not "no access".
# - use_after_free, ensure_resource_availability, object_level_authorization: stateful checks that need
#   OpenAPI links; the spec has none (IDs travel in headers such as Location, or are capabilities).
# - max_response_time: not a conformance property; timing is the benchmarks' business.
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
          "missing_required_header", "unsupported_method", "allow_header_conformance"]

# tus bodies: raw bytes (schemathesis has no serializer of its own for this media type)
schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=2048))

SCRIPT = ("ИНТ. КУХНЯ — НОЧЬ\nОн ругается и бьёт кулаком по столу.\n" * 40).encode()


def _config(base_url: str, headers: dict | None) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "base-url": base_url,
        "headers": headers or {},
        "request-timeout": 10,
        "max-stream-events": 1,  # the snapshot: an event stream never ends by itself
        # No made-up extra headers or query parameters: HTTP recipients ignore what they do not know (RFC 9110
        # §5.1), so "accepted with an unknown header" is not a finding.
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "no-shrink": True,
                       "allow-extra-parameters": False, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "output": {"sanitization": {"enabled": False}},  # exact reproductions; the token is this test's own
        "checks": {
            "enabled": False,
            **{name: {"enabled": True} for name in CHECKS},
            # tus answers a missing or wrong Tus-Resumable with 412 (the protocol's precondition), not 400; a refer
            # key that rotated or froze is 410 whatever else is wrong with the request; sizes past the limits 413.
            "missing_required_header": {"enabled": True,
                                        "expected-statuses": ["400", "401", "403", "406", "412", "415", "422"]},
            "negative_data_rejection": {"enabled": True, "expected-statuses": [
                "400", "401", "403", "404", "405", "406", "409", "410", "412", "413", "415", "422", "428", "429",
                "5xx"]},
        },
    })


class World:
    """Real things on the live server that generated requests may name."""

    def __init__(self, server_url: str, token: str):
        self.url = server_url
        self.bearer = {"Authorization": f"Bearer {token}"}

    def build(self, app) -> "World":
        from sqlalchemy import select

        from gateway.extensions import db
        from gateway.models import BasisViolation, Comment, ReferKey, ReferSession

        url, bearer = self.url, self.bearer
        self.violation_ids = list(db.session.scalars(select(BasisViolation.id).order_by(BasisViolation.id)))
        assert len(self.violation_ids) >= 3, "the catalog is not loaded"
        self.file_id = upload_file(url, SCRIPT, filename="Кухня.txt")

        def submit(title: str) -> int:
            answer = requests.post(url + "/cinema/", headers=bearer, json={
                "file_id": self.file_id, "target_audience": "12+", "title": title, "comment": "Сцена 2"})
            assert answer.status_code == 201, answer.text
            return answer.json()["id"]

        def live_key(analysis_id: int) -> str:
            db.session.expire_all()
            return db.session.scalar(select(ReferKey.key).join(ReferSession, ReferSession.current_key_id == ReferKey.id)
                                     .where(ReferSession.analysis_id == analysis_id))

        # a1: complete with comments, a result and a recommendation (db_ready)
        self.analysis_id = submit("finished")
        key = live_key(self.analysis_id)
        assert requests.get(f"{url}/download/{key}/").content == SCRIPT
        answer = requests.post(url + "/comments/", headers=bearer, json={
            "refer": key, "author": "AI", "text": "Ругань", "violation_id": self.violation_ids[0],
            "severity": "mild", "count": 2, "location": "сцена 1", "quote": "ругается"})
        assert answer.status_code == 201, answer.text
        answer = requests.post(f"{url}/download/{key}/", headers=bearer,
                               files={"file": ("отчёт.html", b"<p>report</p>", "text/html")})
        assert answer.status_code == 201, answer.text
        self.result_key = answer.json()["result_url"].rstrip("/").rsplit("/", 1)[1]
        db.session.expire_all()
        self.user_comment_id = db.session.scalar(select(Comment.id).where(
            Comment.analysis_id == self.analysis_id, Comment.author == Comment.USER))
        answer = requests.post(url + "/recommend/", headers=bearer, json={
            "analysis_id": self.analysis_id, "text": "16+", "rating": "mild", "age_rating": "16+",
            "user_comment_id": self.user_comment_id,
            "violations": [{"violation_id": self.violation_ids[0], "count": 2, "severity": "mild"}]})
        assert answer.status_code == 201, answer.text
        # a2: in error (restartable); a3: processing with a live refer key; a4: processing (may be failed)
        self.failed_id = submit("failed")
        answer = requests.post(f"{url}/cinema/{self.failed_id}/error/", headers=bearer, json={"reason": "empty"})
        assert answer.status_code == 200, answer.text
        self.live_id = submit("live")
        self.refer = live_key(self.live_id)
        self.processing_id = submit("processing")
        # an unfinished upload for the tus operations (HEAD, PATCH, DELETE)
        self.upload_id = start_upload(url, 4096).rstrip("/").rsplit("/", 1)[1]
        return self

    # -- turning generated values into real ones ------------------------------------------------------
    def real_path(self, label: str, params: dict) -> dict:
        real = dict(params)
        for name in params:
            if name == "upload_id":
                real[name] = self.upload_id
            elif name == "analysis_id":
                real[name] = (self.failed_id if label.endswith("/refer/") else
                              self.processing_id if label.endswith("/error/") else self.analysis_id)
            elif name == "refer":
                real[name] = self.refer
            elif name == "key":
                real[name] = self.result_key
            elif name == "file_id":
                real[name] = self.file_id
        return real

    def real_query(self, query: dict) -> dict:
        return {**query, "analysis_id": self.analysis_id, "file_id": self.file_id}

    def real_body(self, label: str, body: dict) -> dict:
        real = dict(body)
        if "/cinema/" in label or "file_id" in body:
            real["file_id"] = self.file_id
        if "analysis_id" in body:
            real["analysis_id"] = self.live_id
        if "refer" in body:
            real["refer"] = self.refer
        if isinstance(body.get("violation_id"), int):
            real["violation_id"] = self.violation_ids[1]
        if body.get("user_comment_id") is not None:
            real["user_comment_id"] = None  # a3 has its own User comment; naming a1's is a documented 400
        if isinstance(body.get("violations"), list):
            real["violations"] = [
                {**item, "violation_id": self.violation_ids[index % len(self.violation_ids)]}
                if isinstance(item, dict) else item
                for index, item in enumerate(body["violations"][:len(self.violation_ids)])]
        return real


def _add_hooks(schema, world: World) -> None:
    """Half the generated requests (as Hypothesis picks, deterministically) name real things instead."""

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        if not path_parameters:
            return st.just(path_parameters)
        return st.sampled_from([path_parameters, world.real_path(context.operation.label, path_parameters)])

    @schema.hook
    def flatmap_query(context, query):
        if context.operation.path not in ("/comments/", "/recommend/", "/cinema/{analysis_id}/"):
            return st.just(query)
        return st.sampled_from([query or {}, world.real_query(query or {})])

    @schema.hook
    def flatmap_body(context, body):
        if not isinstance(body, dict) or context.operation.method.upper() != "POST":
            return st.just(body)
        return st.sampled_from([body, world.real_body(context.operation.label, body)])


@dataclass
class Outcome:
    failures: dict[tuple, str] = field(default_factory=dict)
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    requests: int = 0

    def report(self) -> str:
        lines = [f"{len(self.failures)} distinct failure(s) in {self.requests} requests:"]
        lines += self.failures.values()
        return "\n\n".join(lines)


def run(server_url: str, world: World, headers: dict | None = None) -> Outcome:
    """One schemathesis run (examples, coverage and fuzzing phases) against the live server."""
    schema = schemathesis.openapi.from_url(server_url + "/swagger.json", config=_config(server_url, headers))
    _add_hooks(schema, world)
    outcome = Outcome()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, engine_events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                outcome.requests += 1
                if interaction.response is not None:
                    outcome.statuses[recorder.label][interaction.response.status_code] += 1
            for checks in recorder.checks.values():
                for check in checks:
                    if check.status != Status.FAILURE or check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    key = (recorder.label, check.name, failure.title, getattr(failure, "status_code", None))
                    outcome.failures.setdefault(key, f"{recorder.label} [{check.name}] {failure.title}\n"
                                                     f"{failure.message}\n{check.failure_info.code_sample}")
        elif isinstance(event, engine_events.NonFatalError):
            outcome.failures[(event.label, "error")] = f"{event.label}: {event.info.format()}"
        elif isinstance(event, engine_events.FatalError):
            raise event.exception
    return outcome


@pytest.fixture
def world(live_server, settings, app, loaded_catalog, tmp_path) -> World:
    from hypothesis.configuration import set_hypothesis_home_dir
    set_hypothesis_home_dir(tmp_path / "hypothesis")  # its caches stay out of the work tree
    return World(live_server.url, settings.analyzer_token).build(app)


def _save(outcome: Outcome, name: str) -> None:
    """With SCHEMATHESIS_REPORT_DIR set, the full report and the statuses seen go there too."""
    folder = os.environ.get("SCHEMATHESIS_REPORT_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        statuses = "\n".join(f"{label}: {dict(counts)}" for label, counts in sorted(outcome.statuses.items()))
        with open(os.path.join(folder, f"{name}.txt"), "w") as out:
            out.write(outcome.report() + "\n\n" + statuses + "\n")


def _reached(outcome: Outcome, label: str, *statuses: int) -> bool:
    return any(outcome.statuses[label][status] for status in statuses)


def test_anonymous(live_server, world):
    outcome = run(live_server.url, world)
    _save(outcome, "anonymous")
    assert not outcome.failures, outcome.report()
    # the capability paths were exercised, not only refusals
    assert _reached(outcome, "GET /cinema/{analysis_id}/", 200), dict(outcome.statuses)
    assert _reached(outcome, "GET /comments/", 200) and _reached(outcome, "GET /recommend/", 200)
    assert _reached(outcome, "GET /download/{refer}/", 200, 206)


def test_browser(live_server, world):
    page = browser(live_server.url)
    cookie = "; ".join(f"{name}={value}" for name, value in page.cookies.get_dict().items())
    outcome = run(live_server.url, world, {"X-CSRFToken": page.headers["X-CSRFToken"], "Cookie": cookie})
    _save(outcome, "browser")
    assert not outcome.failures, outcome.report()
    assert _reached(outcome, "POST /cinema/", 201, 429), dict(outcome.statuses)
    assert _reached(outcome, "POST /comments/", 201)


def test_analyzer(live_server, world):
    outcome = run(live_server.url, world, world.bearer)
    _save(outcome, "analyzer")
    assert not outcome.failures, outcome.report()
    for label, statuses in (("POST /comments/", (201,)), ("POST /recommend/", (200, 201)),
                            ("POST /download/{refer}/", (201,)), ("POST /cinema/{analysis_id}/refer/", (201,)),
                            ("POST /cinema/{analysis_id}/error/", (200,))):
        assert _reached(outcome, label, *statuses), (label, dict(outcome.statuses))
