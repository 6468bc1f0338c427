"""The hand-off: a signed POST with retries, or the built-in analyzer's queue; exactly once per session."""
import hashlib
import hmac
import json
import os

import requests

from conftest import upload_file, wait_until, browser

SHORT = dict(REFER_ROTATION_SECONDS=2, REFER_LIFETIME_SECONDS=20, REFER_GRACE_SECONDS=1,
             REFER_FROZEN_TTL_SECONDS=30)


def test_signed_handoff_is_retried_after_500s_with_the_current_key(server_factory, worker_factory, receiver,
                                                                    settings, app):
    hook = receiver(statuses=[500, 500])
    server = server_factory(**SHORT, ANALYZER_URL=hook.url)
    worker_factory(**SHORT, ANALYZER_URL=hook.url, PUBLIC_URL=server.url)
    data = os.urandom(10_000)
    file_id = upload_file(server.url, data, "Сцена.docx",
                          "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    analysis_id = browser(server.url).post(server.url + "/cinema/", json={"file_id": file_id, "target_audience": "18+",
                                                               "title": "Night"}).json()["id"]
    wait_until(lambda: len(hook.received) >= 3, timeout=15, message="three attempts")
    attempts = hook.received
    for attempt in attempts:
        raw = attempt["body"]
        expected = "sha256=" + hmac.new(settings.analyzer_token.encode(), raw, hashlib.sha256).hexdigest()
        assert attempt["headers"]["X-Signature"] == expected
        assert attempt["headers"]["Content-Type"] == "application/json"
    body = json.loads(attempts[-1]["body"])
    assert body["analysis_id"] == analysis_id and body["file_id"] == file_id
    assert body["filename"] == "Сцена.docx" and body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["target_audience"] == "18+" and body["title"] == "Night"
    assert body["download_url"] == f"{server.url}/download/{body['refer']}/"
    assert body["upload_result_url"] == body["download_url"]
    for name in ("comments_url", "recommend_url", "violations_url"):
        assert body[name].startswith(server.url + "/")
    # Back-off: about 1 s, then 2 s between attempts.
    gaps = [b["at"] - a["at"] for a, b in zip(attempts, attempts[1:])]
    assert 0.8 <= gaps[0] <= 2.5 and 1.8 <= gaps[1] <= 3.5, gaps
    # The key handed over on the successful attempt downloads the file.
    assert requests.get(body["download_url"]).content == data
    # Delivered once: no further POSTs.
    import time
    time.sleep(2.5)
    assert len(hook.received) == 3
    from gateway.extensions import db
    from gateway.models import ReferSession
    db.session.remove()
    session = ReferSession.query.filter_by(analysis_id=analysis_id).one()
    assert session.handoff_state == "delivered" and session.handoff_attempts == 3
    metrics = requests.get(server.url + "/metrics").text
    assert "gateway_handoff_attempts_total 3" in metrics and "gateway_handoff_failures_total 2" in metrics


def test_undeliverable_handoff_ends_in_error(server_factory, worker_factory, receiver, app):
    hook = receiver(statuses=[503] * 100)
    env = dict(SHORT, REFER_LIFETIME_SECONDS=4, REFER_ROTATION_SECONDS=1, ANALYZER_URL=hook.url)
    server = server_factory(**env)
    worker_factory(**env, PUBLIC_URL=server.url)
    file_id = upload_file(server.url, b"script")
    analysis_id = browser(server.url).post(server.url + "/cinema/", json={"file_id": file_id,
                                                               "target_audience": "6+"}).json()["id"]
    result = wait_until(lambda: (a := requests.get(f"{server.url}/cinema/{analysis_id}/",
                                                   params={"file_id": file_id}).json())["status"] == "error" and a,
                        timeout=15, message="hand-off failure")
    assert result["reason"] == "hand-off failed"
    refers = {json.loads(r["body"])["refer"] for r in hook.received}
    assert len(hook.received) >= 3 and len(refers) >= 2, "each attempt carries the then-current key"


def test_without_analyzer_url_the_builtin_analyzer_fetches_by_refer(server_factory, worker_factory, app):
    server = server_factory(**SHORT)
    worker = worker_factory(**SHORT, PUBLIC_URL=server.url)
    data = b"INT. HALL - DAY\nA quiet scene.\n" * 50_000
    file_id = upload_file(server.url, data)
    analysis_id = browser(server.url).post(server.url + "/cinema/", json={"file_id": file_id,
                                                               "target_audience": "12+"}).json()["id"]
    from gateway.extensions import db
    from gateway.models import ReferSession

    def downloaded():  # the first download froze the key; the analysis may have gone on to its end since
        db.session.remove()
        session = ReferSession.query.filter_by(analysis_id=analysis_id).one()
        return session.frozen_key_id is not None and session

    session = wait_until(downloaded, timeout=20, message="the built-in analyzer's download")
    assert session.handoff_state == "delivered"
    from gateway.models import ReferKey
    keys = [k.key for k in ReferKey.query.filter_by(session_id=session.id)]
    logs = worker.log_path.read_text() + server.log_path.read_text()
    assert keys and not any(key in logs for key in keys), "a refer key reached a log"
