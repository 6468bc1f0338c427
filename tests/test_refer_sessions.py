"""Refer sessions on a real worker, with short settings: issue, rotation, grace, freeze, expiry, limits, restart."""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import TUS, start_upload, upload_file, wait_until, browser

SHORT = dict(REFER_ROTATION_SECONDS=1, REFER_LIFETIME_SECONDS=5, REFER_GRACE_SECONDS=0.5,
             REFER_FROZEN_TTL_SECONDS=3)


@pytest.fixture
def gateway(server_factory, worker_factory, receiver, app):
    """Web and worker with short refer settings; hand-offs go to a local receiver that answers 200."""
    hook = receiver()
    env = dict(SHORT, ANALYZER_URL=hook.url)
    server = server_factory(**env)
    worker_factory(**env, PUBLIC_URL=server.url)
    server.hook = hook
    return server


def fresh():
    from gateway.extensions import db
    db.session.remove()
    return db.session


def session_of(analysis_id):
    from gateway.models import ReferSession
    return fresh().query(ReferSession).filter_by(analysis_id=analysis_id).order_by(ReferSession.id.desc()).first()


def key_text(key_id):
    from gateway.models import ReferKey
    return fresh().get(ReferKey, key_id).key


def submit(server, file_id, **fields):
    answer = browser(server.url).post(server.url + "/cinema/", json={"file_id": file_id, "target_audience": "12+", **fields})
    return answer


def analysis(server, analysis_id, file_id):
    return requests.get(f"{server.url}/cinema/{analysis_id}/", params={"file_id": file_id}).json()


def test_timeline_issue_rotate_grace_freeze(gateway, app):
    data = os.urandom(200_000)
    file_id = upload_file(gateway.url, data, "Сценарий «Зима».txt")
    created = submit(gateway, file_id, title="Winter")
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "processing" and body["events_url"].endswith(f"/events/{file_id}/")
    analysis_id = body["id"]

    first = session_of(analysis_id)
    assert first.state == "live"
    k0 = key_text(first.current_key_id)
    assert len(k0) >= 22
    assert requests.head(f"{gateway.url}/download/{k0}/").status_code == 200  # HEAD does not freeze

    # Rotation: a new key within about a second; the old one lives through its grace, then 410.
    rotated = wait_until(lambda: (s := session_of(analysis_id)).rotations >= 1 and s, timeout=5, message="rotation")
    k1 = key_text(rotated.current_key_id)
    assert k1 != k0
    grace_left = rotated.previous_valid_until - time.time()
    if grace_left > 0.1:
        assert requests.head(f"{gateway.url}/download/{k0}/").status_code == 200
    time.sleep(max(0.0, rotated.previous_valid_until - time.time()) + 0.1)
    assert requests.head(f"{gateway.url}/download/{k0}/").status_code == 410

    # First download freezes the key it used; rotation stops for good.
    k_now = key_text(session_of(analysis_id).current_key_id)
    answer = requests.get(f"{gateway.url}/download/{k_now}/")
    assert answer.status_code == 200 and answer.content == data
    assert answer.headers["ETag"] == f'"{__import__("hashlib").sha256(data).hexdigest()}"'
    assert answer.headers["X-Analysis-Id"] == str(analysis_id)
    assert answer.headers["X-File-Target-Audience"] == "12+"
    assert answer.headers["Accept-Ranges"] == "bytes"
    assert "filename*=UTF-8''%D0%A1%D1%86%D0%B5%D0%BD%D0%B0%D1%80%D0%B8%D0%B9" in answer.headers["Content-Disposition"]
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="')
    frozen = session_of(analysis_id)
    assert frozen.state == "frozen" and frozen.next_rotation_at is None
    rotations = frozen.rotations
    time.sleep(1.6)
    assert session_of(analysis_id).rotations == rotations
    ranged = requests.get(f"{gateway.url}/download/{k_now}/", headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == data[100:200]
    for other in {k0, k1} - {k_now}:
        assert requests.get(f"{gateway.url}/download/{other}/").status_code == 410
    assert requests.get(f"{gateway.url}/download/{'x' * 32}/").status_code == 404

    # No result within REFER_FROZEN_TTL_SECONDS: the analysis fails with "no result".
    final = wait_until(lambda: (a := analysis(gateway, analysis_id, file_id))["status"] == "error" and a,
                       timeout=8, message="no result")
    assert final["reason"] == "no result"
    assert requests.get(f"{gateway.url}/download/{k_now}/").status_code == 410


def test_lifetime_expiry_then_restart(gateway):
    file_id = upload_file(gateway.url, b"INT. ROOM - NIGHT\n" * 100)
    analysis_id = submit(gateway, file_id).json()["id"]
    k0 = key_text(session_of(analysis_id).current_key_id)
    expired = wait_until(lambda: (a := analysis(gateway, analysis_id, file_id))["status"] == "error" and a,
                         timeout=10, message="expiry")
    assert expired["reason"] == "refer expired"
    s = session_of(analysis_id)
    assert s.state == "expired" and s.rotations >= 3
    current = key_text(s.current_key_id)
    assert requests.get(f"{gateway.url}/download/{current}/").status_code == 410
    assert requests.get(f"{gateway.url}/download/{k0}/").status_code == 410

    # The restart the seed lacked: needs the file ID (or the token), else 404.
    assert browser(gateway.url).post(f"{gateway.url}/cinema/{analysis_id}/refer/", json={}).status_code == 404
    assert browser(gateway.url).post(f"{gateway.url}/cinema/{analysis_id}/refer/",
                         json={"file_id": "wrong" * 5}).status_code == 404
    restarted = browser(gateway.url).post(f"{gateway.url}/cinema/{analysis_id}/refer/", json={"file_id": file_id})
    assert restarted.status_code == 201 and restarted.json()["status"] == "processing"
    again = session_of(analysis_id)
    assert again.id != s.id and again.state == "live"
    assert requests.head(f"{gateway.url}/download/{key_text(again.current_key_id)}/").status_code == 200
    # A running session cannot be restarted on top of itself.
    assert browser(gateway.url).post(f"{gateway.url}/cinema/{analysis_id}/refer/",
                         json={"file_id": file_id}).status_code == 409


def test_eleventh_open_analysis_is_429_and_a_freeze_frees_a_slot(gateway):
    file_id = upload_file(gateway.url, b"x" * 1000)
    ids = []
    with ThreadPoolExecutor(16) as pool:  # submitted at once: the count must still be exact
        answers = list(pool.map(lambda _: submit(gateway, file_id), range(16)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 10 and statuses.count(429) == 6
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1 and "retry" in refused.json()["error"]
    ids = [a.json()["id"] for a in answers if a.status_code == 201]
    key = key_text(session_of(ids[0]).current_key_id)
    assert requests.get(f"{gateway.url}/download/{key}/").status_code == 200
    assert submit(gateway, file_id).status_code == 201


def test_waiting_analysis_starts_when_the_upload_completes(gateway):
    url = start_upload(gateway.url, 10)
    file_id = url.rstrip("/").rsplit("/", 1)[1]
    created = submit(gateway, file_id)
    assert created.status_code == 201 and created.json()["status"] == "--------"
    analysis_id = created.json()["id"]
    assert session_of(analysis_id) is None
    answer = requests.patch(url, data=b"0123456789", headers={
        **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    assert answer.status_code == 204
    assert analysis(gateway, analysis_id, file_id)["status"] == "processing"
    assert session_of(analysis_id).state == "live"


def test_submission_errors(gateway):
    assert submit(gateway, "nope" * 8).status_code == 404
    assert browser(gateway.url).post(gateway.url + "/cinema/", json={"target_audience": "12+"}).status_code == 400
    file_id = upload_file(gateway.url, b"abc")
    assert submit(gateway, file_id, target_audience="21+").status_code == 400
    url = start_upload(gateway.url, 10)
    assert requests.delete(url, headers=TUS).status_code == 204
    assert submit(gateway, url.rstrip("/").rsplit("/", 1)[1]).status_code == 409
    form = browser(gateway.url).post(gateway.url + "/cinema/", data={"file_id": file_id, "target_audience": "6+",
                                                         "comment": "please check"})
    assert form.status_code == 201
    assert requests.get(f"{gateway.url}/cinema/{form.json()['id']}/").status_code == 404


def test_concurrent_first_downloads_race_a_rotation(server_factory, worker_factory, receiver, app):
    """Many first GETs by the current and the grace key while rotations run: exactly one key wins the freeze,
    and nothing rotates after it."""
    hook = receiver()
    env = dict(SHORT, REFER_ROTATION_SECONDS=0.3, REFER_GRACE_SECONDS=0.3, ANALYZER_URL=hook.url)
    server = server_factory(workers=2, **env)
    worker_factory(**env, PUBLIC_URL=server.url)
    data = os.urandom(50_000)
    file_id = upload_file(server.url, data)
    for _ in range(3):
        analysis_id = submit(server, file_id).json()["id"]
        wait_until(lambda: session_of(analysis_id).rotations >= 1, timeout=5, message="a rotation")
        s = session_of(analysis_id)
        keys = [key_text(s.current_key_id), key_text(s.previous_key_id)]
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda i: requests.get(f"{server.url}/download/{keys[i % 2]}/"), range(24)))
        winners = {keys[i % 2] for i, a in enumerate(answers) if a.status_code == 200}
        assert all(a.status_code in (200, 410) for a in answers)
        assert len(winners) == 1, "two keys were served after the freeze"
        assert all(a.content == data for a in answers if a.status_code == 200)
        frozen = session_of(analysis_id)
        assert frozen.state == "frozen" and key_text(frozen.frozen_key_id) in winners
        time.sleep(0.8)
        after = session_of(analysis_id)
        assert after.rotations == frozen.rotations and after.next_rotation_at is None


def test_refer_keys_never_reach_the_access_log(gateway):
    file_id = upload_file(gateway.url, b"secret script")
    analysis_id = submit(gateway, file_id).json()["id"]
    key = key_text(session_of(analysis_id).current_key_id)
    assert requests.get(f"{gateway.url}/download/{key}/").status_code == 200
    requests.get(f"{gateway.url}/cinema/{analysis_id}/", params={"file_id": file_id})
    time.sleep(0.5)
    log = gateway.log_path.read_text()
    assert "/download/…/" in log
    assert key not in log and f"file_id={file_id}" not in log
