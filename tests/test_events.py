"""The file's live event stream over real HTTP: snapshot, every event type, replay by Last-Event-ID."""
import os
import time

import pytest
import requests

from conftest import TUS, start_upload, browser
from sse import SSEClient

SHORT = dict(REFER_ROTATION_SECONDS=1, REFER_LIFETIME_SECONDS=30, REFER_GRACE_SECONDS=0.5,
             REFER_FROZEN_TTL_SECONDS=30, SSE_HEARTBEAT_SECONDS=0.5)


@pytest.fixture
def gateway(server_factory, worker_factory, receiver, app):
    hook = receiver()
    server = server_factory(**SHORT, ANALYZER_URL=hook.url)
    worker_factory(**SHORT, ANALYZER_URL=hook.url, PUBLIC_URL=server.url)
    return server


def test_stream_shows_snapshot_upload_status_refer_and_downloading(gateway):
    data = os.urandom(3 * 1024 * 1024)
    url = start_upload(gateway.url, len(data))
    file_id = url.rstrip("/").rsplit("/", 1)[1]
    watcher = SSEClient(f"{gateway.url}/events/{file_id}/")
    assert watcher.response.headers["Content-Type"].startswith("text/event-stream")
    assert watcher.response.headers["Cache-Control"] == "no-cache"
    assert watcher.response.headers["X-Accel-Buffering"] == "no"
    snapshot = watcher.wait_for(lambda e: e["event"] == "snapshot")[0]["json"]
    assert snapshot["file"]["state"] == "uploading" and snapshot["analyses"] == []

    created = browser(gateway.url).post(gateway.url + "/cinema/", json={"file_id": file_id, "target_audience": "16+"})
    analysis_id = created.json()["id"]
    assert created.json()["events_url"] == f"{gateway.url}/events/{file_id}/"
    half = len(data) // 2
    for offset, chunk in ((0, data[:half]), (half, data[half:])):
        answer = requests.patch(url, data=chunk, headers={**TUS, "Upload-Offset": str(offset),
                                                          "Content-Type": "application/offset+octet-stream"})
        assert answer.status_code == 204
    done = watcher.wait_for(lambda e: e["event"] == "upload" and e["json"]["state"] == "complete")[0]["json"]
    assert done["offset"] == done["length"] == len(data)
    assert watcher.wait_for(lambda e: e["event"] == "status" and e["json"] == {
        "analysis_id": analysis_id, "status": "processing"})
    refers = watcher.wait_for(lambda e: e["event"] == "refer" and len(watcher.of_type("refer")) >= 3, timeout=10)
    urls = [e["json"]["download_url"] for e in watcher.of_type("refer")]
    assert len(set(urls)) == len(urls) >= 3, "every rotation announces a new key"
    assert all(e["json"]["analysis_id"] == analysis_id and e["json"]["expires_at"] > time.time() - 5
               for e in refers)
    assert requests.get(urls[-1]).status_code in (200, 410)
    current = watcher.of_type("refer")[-1]["json"]["download_url"]
    assert requests.get(current).status_code == 200
    watcher.wait_for(lambda e: e["event"] == "downloading" and e["json"]["analysis_id"] == analysis_id)
    assert all("id" in e for e in watcher.events if e["event"] != "snapshot") and watcher.comments >= 1
    watcher.close()


def test_last_event_id_replays_exactly_what_was_missed(gateway):
    url = start_upload(gateway.url, 100)
    file_id = url.rstrip("/").rsplit("/", 1)[1]
    first = SSEClient(f"{gateway.url}/events/{file_id}/")
    first.wait_for(lambda e: e["event"] == "snapshot")
    for offset in range(0, 100, 10):
        requests.patch(url, data=b"x" * 10, headers={**TUS, "Upload-Offset": str(offset),
                                                     "Content-Type": "application/offset+octet-stream"})
    first.wait_for(lambda e: e["event"] == "upload" and e["json"]["state"] == "complete")
    seen = [e for e in first.events if e["event"] != "snapshot"]
    first.close()
    cut = seen[3]["id"]
    missed = [e["id"] for e in seen[4:]]
    # More happens while nobody watches.
    analysis_id = browser(gateway.url).post(gateway.url + "/cinema/", json={"file_id": file_id,
                                                                "target_audience": "0+"}).json()["id"]
    time.sleep(1.5)
    second = SSEClient(f"{gateway.url}/events/{file_id}/", last_event_id=cut)
    second.wait_for(lambda e: e["event"] == "status" and e["json"]["analysis_id"] == analysis_id)
    time.sleep(0.5)
    replayed = [e["id"] for e in second.events if e["event"] != "snapshot"]
    assert replayed[:len(missed)] == missed
    assert second.events[0]["event"] == "snapshot" and "id" not in second.events[0]
    assert len(replayed) == len(set(replayed))
    second.close()


def test_seed_address_serves_the_stream_only_when_asked_by_name(gateway):
    url = start_upload(gateway.url, 10)
    file_id = url.rstrip("/").rsplit("/", 1)[1]
    alias = SSEClient(f"{gateway.url}/download/{file_id}/")
    assert alias.wait_for(lambda e: e["event"] == "snapshot")[0]["json"]["file"]["id"] == file_id
    alias.close()
    plain = requests.get(f"{gateway.url}/download/{file_id}/", headers={"Accept": "*/*"})
    assert plain.status_code == 404
    assert requests.get(f"{gateway.url}/events/{'n' * 32}/").status_code == 404


def test_open_streams_are_counted_and_given_back(gateway):
    url = start_upload(gateway.url, 10)
    file_id = url.rstrip("/").rsplit("/", 1)[1]
    watchers = [SSEClient(f"{gateway.url}/events/{file_id}/") for _ in range(5)]
    for w in watchers:
        w.wait_for(lambda e: e["event"] == "snapshot")

    def gauge():
        text = requests.get(gateway.url + "/metrics").text
        return int(next(line.split()[-1] for line in text.splitlines()
                        if line.startswith("gateway_event_streams_open ")))

    assert gauge() == 5
    for w in watchers:
        w.close()
    deadline = time.monotonic() + 5
    while gauge() != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gauge() == 0
