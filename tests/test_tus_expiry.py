"""Unfinished uploads expire: the worker's periodic sweep removes their bytes and marks their rows."""
import time

import requests

from conftest import TUS


def test_worker_removes_expired_unfinished_uploads(server_factory, worker_factory, settings, app):
    from gateway.extensions import db
    from gateway.models import File
    server = server_factory(UPLOAD_EXPIRATION_SECONDS=1)
    created = requests.post(server.url + "/files/", headers={**TUS, "Upload-Length": "100"})
    url = created.headers["Location"]
    upload_id = url.rstrip("/").rsplit("/", 1)[1]
    assert "Upload-Expires" in created.headers
    patch = requests.patch(url, data=b"x" * 10, headers={**TUS, "Upload-Offset": "0",
                                                          "Content-Type": "application/offset+octet-stream"})
    assert patch.status_code == 204
    finished = requests.post(server.url + "/files/", headers={**TUS, "Upload-Length": "1", "Content-Type":
                                                              "application/offset+octet-stream"}, data=b"y")
    assert finished.headers["Upload-Offset"] == "1"
    data_file = settings.uploads_dir / upload_id[:2] / upload_id
    assert data_file.exists()

    worker_factory(UPLOAD_EXPIRATION_SECONDS=1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and data_file.exists():
        time.sleep(0.2)
    assert not data_file.exists()
    db.session.remove()  # see the worker's commit, not this session's cache
    assert File.query.get(upload_id).state == "expired"
    assert requests.head(url, headers=TUS).status_code == 410
    # A finished upload never expires.
    assert requests.head(finished.headers["Location"], headers=TUS).status_code == 200
