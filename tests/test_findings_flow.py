"""The whole way over HTTP: upload, submit, an analyzer downloads by refer and posts comments, the result file
and the recommendation; statuses pass through every step and appear on the event stream."""
import json

import pytest
import requests

from conftest import TUS, browser, start_upload, wait_until
from sse import SSEClient

ENV = dict(REFER_ROTATION_SECONDS=5, REFER_LIFETIME_SECONDS=60, REFER_GRACE_SECONDS=1,
           REFER_FROZEN_TTL_SECONDS=60)


@pytest.fixture
def catalog(app):
    from gateway.extensions import db
    from gateway.models import BasisViolation
    rows = [BasisViolation(id=1, code="profanity", name="Нецензурная лексика", name_en="Profanity",
                           age_marks="16+ / 18+", age_min="16+", age_max="18+"),
            BasisViolation(id=3, code="violence", name="Физическое насилие", name_en="Physical violence",
                           age_marks="16+ / 18+", age_min="16+", age_max="18+"),
            BasisViolation(id=6, code="flirting", name="Флирт / намёки", name_en="Flirting",
                           age_marks="12+ / 16+", age_min="12+", age_max="16+")]
    db.session.add_all(rows)
    db.session.commit()
    return {row.code: row.id for row in rows}


@pytest.fixture
def gateway(server_factory, worker_factory, receiver, catalog):
    hook = receiver()
    server = server_factory(**ENV, ANALYZER_URL=hook.url)
    worker_factory(**ENV, ANALYZER_URL=hook.url, PUBLIC_URL=server.url)
    server.hook = hook
    return server


def test_full_flow(gateway, settings, catalog, app):
    token = {"Authorization": f"Bearer {settings.analyzer_token}"}
    data = "ИНТ. КУХНЯ — НОЧЬ\nОн ругается и бьёт кулаком по столу.\n".encode() * 200
    url = start_upload(gateway.url, len(data))
    file_id = url.rstrip("/").rsplit("/", 1)[1]
    watcher = SSEClient(f"{gateway.url}/events/{file_id}/")
    watcher.wait_for(lambda e: e["event"] == "snapshot")

    page = browser(gateway.url)
    created = page.post(gateway.url + "/cinema/", json={"file_id": file_id, "target_audience": "12+",
                                                        "title": "Кухня", "comment": "Проверьте сцену 2"})
    assert created.status_code == 201 and created.json()["status"] == "--------"
    analysis_id = created.json()["id"]
    assert requests.patch(url, data=data, headers={**TUS, "Upload-Offset": "0", "Content-Type":
                                                   "application/offset+octet-stream"}).status_code == 204

    # The analyzer gets the hand-off and downloads by refer.
    wait_until(lambda: gateway.hook.received, timeout=10, message="hand-off")
    handoff = json.loads(gateway.hook.received[0]["body"])
    assert requests.get(handoff["download_url"]).content == data

    # AI comments, one per violation found.
    for body in ({"violation_id": catalog["profanity"], "severity": "mild", "count": 3, "location": "scene 1",
                  "quote": "ругается", "text": "Ругань в сцене 1"},
                 {"violation_id": catalog["violence"], "severity": "moderate", "count": 1, "location": "scene 1",
                  "quote": "бьёт кулаком", "text": "Удар кулаком"}):
        answer = requests.post(gateway.url + "/comments/", headers=token,
                               json={"refer": handoff["refer"], "author": "AI", **body})
        assert answer.status_code == 201, answer.text
    listed = requests.get(gateway.url + "/comments/", params={"analysis_id": analysis_id, "file_id": file_id})
    comments = listed.json()
    assert [c["author"] for c in comments] == ["User", "AI", "AI"]
    assert comments[1]["violation_id"] == catalog["profanity"] and comments[1]["name"] == "Нецензурная лексика"
    user_comment_id = comments[0]["id"]

    # The result file, then the recommendation: ready, then db_ready.
    report = "<html><body>Отчёт</body></html>".encode()
    answer = requests.post(handoff["upload_result_url"], headers=token,
                           files={"file": ("отчёт.html", report, "text/html")})
    assert answer.status_code == 201, answer.text
    result_url = answer.json()["result_url"]
    assert answer.json()["status"] == "ready"
    assert watcher.wait_for(lambda e: e["event"] == "ready")[0]["json"] == {"analysis_id": analysis_id,
                                                                           "result_url": result_url}
    fetched = requests.get(result_url)
    assert fetched.status_code == 200 and fetched.content == report
    assert "filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.html" in fetched.headers["Content-Disposition"]

    recommendation = {"analysis_id": analysis_id, "text": "Рекомендуется 16+", "rating": "moderate",
                      "age_rating": "16+", "user_comment_id": user_comment_id,
                      "violations": [{"violation_id": catalog["profanity"], "count": 3, "severity": "mild"},
                                     {"violation_id": catalog["violence"], "count": 1, "severity": "moderate"}]}
    answer = requests.post(gateway.url + "/recommend/", headers=token, json=recommendation)
    assert answer.status_code == 201, answer.text
    shown = requests.get(f"{gateway.url}/cinema/{analysis_id}/", params={"file_id": file_id}).json()
    assert shown["status"] == "db_ready" and shown["result_url"] == result_url
    assert shown["target_audience"] == "12+" and shown["suggested_age_rating"] == "18+"
    assert {v["violation_id"]: v["count"] for v in shown["violations"]} == {catalog["profanity"]: 3,
                                                                            catalog["violence"]: 1}
    again = requests.post(gateway.url + "/recommend/", headers=token, json={**recommendation, "violations": [
        {"violation_id": catalog["flirting"], "count": 2, "severity": "mild"}]})
    assert again.status_code == 200
    from gateway.extensions import db
    from gateway.models import Recommendation, ViolationCount
    db.session.remove()
    assert Recommendation.query.count() == 1
    assert [(c.violation_id, c.count) for c in ViolationCount.query.all()] == [(catalog["flirting"], 2)]
    assert requests.get(gateway.url + "/recommend/", params={"analysis_id": analysis_id,
                                                             "file_id": file_id}).json()["age_rating"] == "16+"

    statuses = [e["json"]["status"] for e in watcher.of_type("status") if e["json"]["analysis_id"] == analysis_id]
    assert statuses[:3] == ["processing", "ready", "db_ready"]
    assert any(e["json"]["author"] == "AI" for e in watcher.of_type("comment"))
    watcher.close()


def test_recommendation_first_then_result(gateway, settings, catalog):
    from conftest import upload_file
    token = {"Authorization": f"Bearer {settings.analyzer_token}"}
    file_id = upload_file(gateway.url, b"EXT. ROAD - DAY\n")
    analysis_id = browser(gateway.url).post(gateway.url + "/cinema/", json={
        "file_id": file_id, "target_audience": "18+"}).json()["id"]
    wait_until(lambda: gateway.hook.received, timeout=10, message="hand-off")
    refer = json.loads(gateway.hook.received[0]["body"])["refer"]
    assert requests.post(gateway.url + "/recommend/", headers=token, json={
        "refer": refer, "text": "ok", "rating": "None", "age_rating": "0+", "violations": []}).status_code == 201
    shown = requests.get(f"{gateway.url}/cinema/{analysis_id}/", params={"file_id": file_id}).json()
    assert shown["status"] == "processing" and shown["suggested_age_rating"] == "0+"
    raw = requests.post(f"{gateway.url}/download/{refer}/", headers={**token, "Content-Type": "text/plain",
                                                                     "Content-Disposition": 'attachment; filename="r.txt"'},
                        data=b"report")
    assert raw.status_code == 201 and raw.json()["status"] == "db_ready"
