"""Who may do what, over HTTP against gunicorn (SPEC §4 rule 6, §6, §7).

- Browser writes (`POST /cinema/`, user comments, restarting a session) need the CSRF token of `GET /csrftoken/`
  *and* the session cookie it is bound to; the analyzer's bearer token replaces CSRF, and a bearer token that is
  given must be right (401).
- Analyzer writes (AI comments, `/recommend/`, the result upload) need the bearer token: 401 without it.
- Reads of an analysis are answered to whoever shows its file ID, or the bearer token; anyone else gets 404.
- tus needs no CSRF; `/healthz` and `/metrics` are public and leak nothing.

Every response any test here receives is audited: none may carry the analyzer token or the SECRET_KEY, and none
may carry a refer key (refer keys travel only in the hand-off and on the file's event stream).
"""
from __future__ import annotations

import http.client
import secrets
import time

import pytest
import requests

from conftest import TUS, browser, start_upload, upload_file


# -- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture
def catalog(app):
    from gateway.extensions import db
    from gateway.models import BasisViolation
    rows = [BasisViolation(id=1, code="profanity", name="Нецензурная лексика", name_en="Profanity",
                           age_marks="16+ / 18+", age_min="16+", age_max="18+"),
            BasisViolation(id=3, code="violence", name="Физическое насилие", name_en="Physical violence",
                           age_marks="16+ / 18+", age_min="16+", age_max="18+")]
    db.session.add_all(rows)
    db.session.commit()
    codes = {row.code: row.id for row in rows}
    db.session.remove()
    return codes


@pytest.fixture
def audit(monkeypatch, settings, app):
    """Records every HTTP response of the test; afterwards checks none leaks a secret or a refer key."""
    seen: list[requests.Response] = []
    original = requests.Session.send

    def send(self, request, **kwargs):
        response = original(self, request, **kwargs)
        seen.append(response)
        return response

    monkeypatch.setattr(requests.Session, "send", send)
    yield seen
    monkeypatch.undo()
    from gateway.models import ReferKey
    keys = [key for (key,) in fresh().query(ReferKey.key).all()]
    fresh()
    secrets_ = {"analyzer token": settings.analyzer_token, "SECRET_KEY": settings.secret_key}
    for response in seen:
        where = f"{response.request.method} {response.request.path_url} -> {response.status_code}"
        blob = response.content.decode("utf-8", "replace") + "\n" + "\n".join(
            f"{name}: {value}" for name, value in response.headers.items())
        for what, value in secrets_.items():
            assert value not in blob, f"{where} carries the {what}"
        for key in keys:
            assert key not in blob, f"{where} carries a refer key"


@pytest.fixture
def gw(live_server, catalog, audit):
    return live_server


def fresh():
    from gateway.extensions import db
    db.session.remove()
    return db.session


def bearer(settings, token: str | None = None) -> dict:
    return {"Authorization": f"Bearer {settings.analyzer_token if token is None else token}"}


WRONG = {"Authorization": "Bearer " + secrets.token_urlsafe(32)}


def error_of(response: requests.Response) -> str:
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    return body["error"]


def submit(server, settings, file_id: str, **fields) -> int:
    answer = requests.post(server.url + "/cinema/", headers=bearer(settings),
                           json={"file_id": file_id, "target_audience": "12+", **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def session_of(analysis_id: int):
    from gateway.models import ReferSession
    row = fresh().query(ReferSession).filter_by(analysis_id=analysis_id).order_by(ReferSession.id.desc()).first()
    return row


def current_key(analysis_id: int) -> str:
    from gateway.models import ReferKey
    key = fresh().get(ReferKey, session_of(analysis_id).current_key_id).key
    fresh()
    return key


def expire(analysis_id: int) -> None:
    """The session's lifetime runs out, and the scheduler's expiry job (the real one) ends it."""
    from gateway import refer
    from gateway.models import ReferSession
    session_id = session_of(analysis_id).id
    session = fresh()
    session.query(ReferSession).filter_by(id=session_id).update({"ends_at": time.time() - 1})
    session.commit()
    refer.expire_due()
    fresh()


def rotate_without_grace(settings, analysis_id: int) -> None:
    """The scheduler's rotation (the real one) comes due, with no grace for the replaced key."""
    from gateway import refer
    from gateway.models import ReferSession
    session_id = session_of(analysis_id).id
    session = fresh()
    session.query(ReferSession).filter_by(id=session_id).update({"next_rotation_at": time.time() - 0.5})
    session.commit()
    assert refer.rotate_due(settings.with_overrides(refer_grace_seconds=0)) == 1
    fresh()


def status_of(analysis_id: int) -> str:
    from gateway.models import Analysis
    status = fresh().get(Analysis, analysis_id).status
    fresh()
    return status


def count(model) -> int:
    number = fresh().query(model).count()
    fresh()
    return number


def result_files(settings) -> list:
    root = settings.media_root / "results"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# -- POST /cinema/ ----------------------------------------------------------------------------------------
def test_submit_needs_csrf_with_its_session_or_the_bearer_token(gw, settings):
    from gateway.models import Analysis
    file_id = upload_file(gw.url, b"INT. ROOM - DAY\n")
    body = {"file_id": file_id, "target_audience": "12+"}
    url = gw.url + "/cinema/"

    # No CSRF token at all (JSON and form).
    answer = requests.post(url, json=body)
    assert answer.status_code == 400 and "csrf" in error_of(answer).lower()
    answer = requests.post(url, data=body)
    assert answer.status_code == 400 and "csrf" in error_of(answer).lower()
    # The session cookie but a made-up token.
    page = requests.Session()
    page.get(gw.url + "/csrftoken/")
    answer = page.post(url, json=body, headers={"X-CSRFToken": "not-a-token"})
    assert answer.status_code == 400 and "csrf" in error_of(answer).lower()
    # A genuine token of another session.
    other_token = requests.Session().get(gw.url + "/csrftoken/").json()["csrfToken"]
    answer = page.post(url, json=body, headers={"X-CSRFToken": other_token})
    assert answer.status_code == 400 and "csrf" in error_of(answer).lower()
    # A correct token without the session cookie it belongs to.
    token = requests.get(gw.url + "/csrftoken/").json()["csrfToken"]
    answer = requests.post(url, json=body, headers={"X-CSRFToken": token})
    assert answer.status_code == 400 and "csrf" in error_of(answer).lower()
    # A wrong bearer token: 401, even when a valid CSRF token comes along.
    answer = requests.post(url, json=body, headers=WRONG)
    assert answer.status_code == 401 and "token" in error_of(answer).lower()
    answer = browser(gw.url).post(url, json=body, headers=WRONG)
    assert answer.status_code == 401 and "token" in error_of(answer).lower()
    answer = requests.post(url, json=body, headers=bearer(settings, settings.analyzer_token + "x"))
    assert answer.status_code == 401
    answer = requests.post(url, json=body, headers=bearer(settings, settings.analyzer_token[:-1]))
    assert answer.status_code == 401
    assert count(Analysis) == 0

    # The bearer token instead of CSRF; the browser with its token and cookie.
    answer = requests.post(url, json=body, headers=bearer(settings))
    assert answer.status_code == 201, answer.text
    answer = browser(gw.url).post(url, json=body)
    assert answer.status_code == 201, answer.text
    assert count(Analysis) == 2


# -- POST /comments/ --------------------------------------------------------------------------------------
def test_comment_credentials(gw, settings, catalog):
    from gateway.models import Comment
    file_id = upload_file(gw.url, b"INT. ROOM - DAY\n")
    other_file = upload_file(gw.url, b"EXT. ROAD - NIGHT\n")
    analysis_id = submit(gw, settings, file_id)
    url = gw.url + "/comments/"
    ai = {"analysis_id": analysis_id, "author": "AI", "text": "Ругань", "violation_id": catalog["profanity"],
          "severity": "mild", "count": 2}
    user = {"analysis_id": analysis_id, "author": "User", "text": "Посмотрите сцену 3"}

    # AI comments need the analyzer token: without any credentials, with only CSRF, with a wrong token.
    for answer in (requests.post(url, json=ai),
                   browser(gw.url).post(url, json=ai),
                   browser(gw.url).post(url, json={**ai, "file_id": file_id}),
                   requests.post(url, json=ai, headers=WRONG),
                   browser(gw.url).post(url, json=ai, headers=WRONG)):
        assert answer.status_code == 401, (answer.request.headers, answer.text)
        assert "token" in error_of(answer).lower()
    # A user comment needs CSRF and the analysis's file ID; a wrong or missing file ID answers as if there were
    # no such analysis.
    for file_given in (None, "", other_file, file_id[:-1], file_id + "x"):
        answer = browser(gw.url).post(url, json={**user, **({} if file_given is None else {"file_id": file_given})})
        assert answer.status_code == 404, (file_given, answer.text)
        assert "analysis" in error_of(answer).lower()
    for file_given in (12345, [file_id]):  # not text at all: a malformed request, said so
        answer = browser(gw.url).post(url, json={**user, "file_id": file_given})
        assert answer.status_code == 400, (file_given, answer.text)
        assert "file_id" in error_of(answer)
    answer = requests.post(url, json={**user, "file_id": file_id})  # the file ID but no CSRF
    assert answer.status_code == 400 and "csrf" in error_of(answer).lower()
    answer = requests.post(url, json={**user, "file_id": file_id}, headers=WRONG)
    assert answer.status_code == 401
    assert count(Comment) == 0

    answer = browser(gw.url).post(url, json={**user, "file_id": file_id})
    assert answer.status_code == 201, answer.text
    assert answer.json()["author"] == "User"
    answer = requests.post(url, json=ai, headers=bearer(settings))
    assert answer.status_code == 201, answer.text
    assert answer.json()["author"] == "AI" and answer.json()["name"] == "Нецензурная лексика"
    assert count(Comment) == 2


# -- POST /recommend/ -------------------------------------------------------------------------------------
def test_recommend_needs_the_token(gw, settings, catalog):
    from gateway.models import Recommendation
    file_id = upload_file(gw.url, b"INT. ROOM - DAY\n")
    analysis_id = submit(gw, settings, file_id)
    url = gw.url + "/recommend/"
    body = {"analysis_id": analysis_id, "text": "16+", "rating": "mild", "age_rating": "16+",
            "violations": [{"violation_id": catalog["profanity"], "count": 1, "severity": "mild"}]}
    for answer in (requests.post(url, json=body),
                   requests.post(url, json=body, headers=WRONG),
                   requests.post(url, json=body, headers={"Authorization": "Bearer"}),
                   requests.post(url, json=body, headers={"Authorization": f"Basic {settings.analyzer_token}"}),
                   requests.post(url, json=body, headers={"Authorization": settings.analyzer_token}),
                   browser(gw.url).post(url, json={**body, "file_id": file_id})):
        assert answer.status_code == 401, (answer.request.headers, answer.text)
        assert "token" in error_of(answer).lower()
    assert count(Recommendation) == 0
    assert status_of(analysis_id) == "processing"
    answer = requests.post(url, json=body, headers=bearer(settings))
    assert answer.status_code == 201, answer.text
    assert count(Recommendation) == 1


# -- POST /download/<refer>/ (the result file) -------------------------------------------------------------
def test_result_upload_needs_the_token_and_a_live_refer(gw, settings):
    file_id = upload_file(gw.url, b"INT. ROOM - DAY\n")
    rotated_id = submit(gw, settings, file_id)
    expired_id = submit(gw, settings, file_id)
    key = current_key(rotated_id)
    report = {"file": ("report.html", b"<p>report</p>", "text/html")}

    for headers in ({}, WRONG, {"Authorization": "Bearer "}, {"Authorization": f"Token {settings.analyzer_token}"}):
        answer = requests.post(f"{gw.url}/download/{key}/", headers=headers, files=report)
        assert answer.status_code == 401, (headers, answer.text)
        assert "token" in error_of(answer).lower()
    answer = browser(gw.url).post(f"{gw.url}/download/{key}/", files=report)  # CSRF is not the analyzer's token
    assert answer.status_code == 401
    # Unknown keys, well-formed or not: 404.
    for unknown in (secrets.token_urlsafe(24), "x" * 32, "short"):
        answer = requests.post(f"{gw.url}/download/{unknown}/", headers=bearer(settings), files=report)
        assert answer.status_code == 404, (unknown, answer.text)
        assert "refer" in error_of(answer).lower()
    assert result_files(settings) == [] and status_of(rotated_id) == "processing"

    # A rotated key (its grace over) and the key of an expired session: 410.
    rotate_without_grace(settings, rotated_id)
    answer = requests.post(f"{gw.url}/download/{key}/", headers=bearer(settings), files=report)
    assert answer.status_code == 410, answer.text
    assert "expired" in error_of(answer).lower() or "replaced" in error_of(answer).lower()
    dead = current_key(expired_id)
    expire(expired_id)
    assert status_of(expired_id) == "error"
    answer = requests.post(f"{gw.url}/download/{dead}/", headers=bearer(settings), files=report)
    assert answer.status_code == 410, answer.text
    assert result_files(settings) == []
    assert status_of(rotated_id) == "processing" and status_of(expired_id) == "error"

    # The live key with the token: stored.
    answer = requests.post(f"{gw.url}/download/{current_key(rotated_id)}/", headers=bearer(settings), files=report)
    assert answer.status_code == 201, answer.text
    assert status_of(rotated_id) == "ready" and len(result_files(settings)) == 1


# -- reads: GET /cinema/<id>/, /comments/, /recommend/ -------------------------------------------------------
def test_reads_need_the_file_id_or_the_token(gw, settings, catalog):
    file_id = upload_file(gw.url, b"INT. ROOM - DAY\n")
    other_file = upload_file(gw.url, b"EXT. ROAD - NIGHT\n")
    analysis_id = submit(gw, settings, file_id, comment="Сцена 2")
    other_analysis = submit(gw, settings, other_file)
    assert requests.post(gw.url + "/recommend/", headers=bearer(settings), json={
        "analysis_id": analysis_id, "text": "ok", "rating": "mild", "age_rating": "16+",
        "violations": [{"violation_id": catalog["violence"], "count": 1, "severity": "mild"}]}).status_code == 201
    reads = {"cinema": (f"{gw.url}/cinema/{analysis_id}/", {}),
             "comments": (gw.url + "/comments/", {"analysis_id": analysis_id}),
             "recommend": (gw.url + "/recommend/", {"analysis_id": analysis_id})}
    for name, (url, params) in reads.items():
        refused = [requests.get(url, params=params),
                   requests.get(url, params={**params, "file_id": ""}),
                   requests.get(url, params={**params, "file_id": other_file}),
                   requests.get(url, params={**params, "file_id": file_id[:-1]}),
                   requests.get(url, params={**params, "file_id": file_id + "x"}),
                   requests.get(url, params=params, headers=WRONG),
                   browser(gw.url).get(url, params=params)]  # a CSRF token is no read capability
        for answer in refused:
            assert answer.status_code == 404, (name, answer.request.url, answer.text)
            assert "analysis" in error_of(answer).lower()
        by_file_id = requests.get(url, params={**params, "file_id": file_id})
        assert by_file_id.status_code == 200, (name, by_file_id.text)
        by_token = requests.get(url, params=params, headers=bearer(settings))
        assert by_token.status_code == 200, (name, by_token.text)
        assert by_token.json() == by_file_id.json()
    # The other file's ID opens the other file's analysis only.
    assert requests.get(f"{gw.url}/cinema/{other_analysis}/", params={"file_id": other_file}).status_code == 200
    shown = requests.get(f"{gw.url}/cinema/{analysis_id}/", params={"file_id": file_id}).json()
    assert shown["id"] == analysis_id and shown["status"] == "processing"
    listed = requests.get(gw.url + "/comments/", params={"analysis_id": analysis_id, "file_id": file_id}).json()
    assert [c["author"] for c in listed] == ["User"]


# -- POST /cinema/<id>/refer/ ------------------------------------------------------------------------------
def test_restart_needs_the_file_id_with_csrf_or_the_token(gw, settings):
    file_id = upload_file(gw.url, b"INT. ROOM - DAY\n")
    other_file = upload_file(gw.url, b"EXT. ROAD - NIGHT\n")
    analysis_id = submit(gw, settings, file_id)
    url = f"{gw.url}/cinema/{analysis_id}/refer/"
    sessions_before = session_of(analysis_id).id

    # Without the file ID (or with another one): as if there were no such analysis.
    for answer in (browser(gw.url).post(url, json={}),
                   browser(gw.url).post(url),
                   browser(gw.url).post(url, json={"file_id": other_file}),
                   browser(gw.url).post(url, json={"file_id": ""}),
                   browser(gw.url).post(url, json={"file_id": [file_id]}),
                   requests.post(url, json={}),
                   requests.post(url, json={}, headers=WRONG)):
        assert answer.status_code == 404, answer.text
        assert "analysis" in error_of(answer).lower()
    # The file ID but no CSRF: 400.
    for answer in (requests.post(url, json={"file_id": file_id}),
                   requests.post(url, data={"file_id": file_id})):
        assert answer.status_code == 400 and "csrf" in error_of(answer).lower()
    # Allowed, but the analysis is processing: 409, and nothing restarted.
    for answer in (browser(gw.url).post(url, json={"file_id": file_id}),
                   requests.post(url, headers=bearer(settings))):
        assert answer.status_code == 409, answer.text
        assert "processing" in error_of(answer)
    assert session_of(analysis_id).id == sessions_before and status_of(analysis_id) == "processing"
    # Unknown analysis, even with the token: 404.
    answer = requests.post(f"{gw.url}/cinema/{analysis_id + 1000}/refer/", headers=bearer(settings))
    assert answer.status_code == 404

    # In error: the bearer token restarts it, then (in error again) the browser with the file ID and CSRF.
    expire(analysis_id)
    assert status_of(analysis_id) == "error"
    answer = requests.post(url, json={"file_id": file_id})  # still no CSRF
    assert answer.status_code == 400 and status_of(analysis_id) == "error"
    answer = requests.post(url, headers=bearer(settings))
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "processing" and session_of(analysis_id).id != sessions_before
    expire(analysis_id)
    answer = browser(gw.url).post(url, json={"file_id": file_id})
    assert answer.status_code == 201, answer.text
    assert status_of(analysis_id) == "processing"


# -- /results/<key>/ -----------------------------------------------------------------------------------------
def test_results_by_unknown_key(gw, settings):
    for key in (secrets.token_urlsafe(24), "x" * 32, "short", "a" * 300):
        answer = requests.get(f"{gw.url}/results/{key}/")
        assert answer.status_code == 404, (key, answer.text)
        assert "result" in error_of(answer).lower()
    # Even with the token: the key is the only way in.
    answer = requests.get(f"{gw.url}/results/{secrets.token_urlsafe(24)}/", headers=bearer(settings))
    assert answer.status_code == 404


def raw_get(server, target: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", target)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_results_key_is_no_path(gw, settings):
    """A real result exists; traversal-looking keys do not reach it, nor anything else on disk."""
    file_id = upload_file(gw.url, b"INT. ROOM - DAY\n")
    analysis_id = submit(gw, settings, file_id)
    stored = requests.post(f"{gw.url}/download/{current_key(analysis_id)}/", headers=bearer(settings),
                           files={"file": ("r.txt", b"the report", "text/plain")})
    assert stored.status_code == 201
    result_key = stored.json()["result_url"].rstrip("/").rsplit("/", 1)[1]
    assert requests.get(stored.json()["result_url"]).content == b"the report"
    for target in (f"/results/..%2F{analysis_id}%2F{result_key}/", f"/results/{analysis_id}%2F{result_key}/",
                   "/results/..%2F..%2F..%2Fetc%2Fpasswd/", "/results/%2e%2e/", "/results/.%2e/",
                   f"/results/{result_key}%00/", "/results/..%5C..%5Cwin.ini/"):
        status, body = raw_get(gw, target)
        assert status == 404, (target, status, body[:200])
        assert b"the report" not in body and b"root:" not in body


# -- tus needs no CSRF -------------------------------------------------------------------------------------
def test_tus_needs_no_csrf(gw):
    data = b"x" * 1000
    location = start_upload(gw.url, len(data))  # POST /files/ without cookie or CSRF
    answer = requests.patch(location, data=data[:400], headers={**TUS, "Upload-Offset": "0",
                                                                 "Content-Type": "application/offset+octet-stream"})
    assert answer.status_code == 204, answer.text
    assert requests.head(location, headers=TUS).headers["Upload-Offset"] == "400"
    assert requests.post(location, data=data[400:], headers={
        **TUS, "X-HTTP-Method-Override": "PATCH", "Upload-Offset": "400",
        "Content-Type": "application/offset+octet-stream"}).status_code == 204
    assert requests.options(gw.url + "/files/", headers=TUS).status_code in (200, 204)
    assert requests.delete(start_upload(gw.url, 10), headers=TUS).status_code == 204
    # creation-with-upload too, from a client that never saw /csrftoken/
    assert upload_file(gw.url, b"hello")


# -- /healthz and /metrics -----------------------------------------------------------------------------------
def test_health_and_metrics_are_public_and_tell_no_secrets(gw, settings):
    file_id = upload_file(gw.url, b"INT. ROOM - DAY\n")
    analysis_id = submit(gw, settings, file_id)
    refer_key = current_key(analysis_id)
    stored = requests.post(f"{gw.url}/download/{refer_key}/", headers=bearer(settings),
                           files={"file": ("r.txt", b"report", "text/plain")})
    result_key = stored.json()["result_url"].rstrip("/").rsplit("/", 1)[1]
    waiting = start_upload(gw.url, 100).rstrip("/").rsplit("/", 1)[1]
    health = requests.get(gw.url + "/healthz")
    assert health.status_code == 200 and health.json() == {"db": "ok", "redis": "ok"}
    metrics = requests.get(gw.url + "/metrics")
    assert metrics.status_code == 200 and "gateway_uploads" in metrics.text
    for answer in (health, metrics):
        blob = answer.text + "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
        for secret in (settings.analyzer_token, settings.secret_key, file_id, waiting, refer_key, result_key,
                       settings.database_url, settings.redis_url, str(settings.media_root),
                       str(settings.instance_dir)):
            assert secret not in blob, f"{answer.request.path_url} leaks {secret!r}"
