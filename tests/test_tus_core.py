"""The protocol's main paths over real HTTP: creation, offsets, completion, termination, discovery."""
import base64
import hashlib
import os

import requests

from conftest import TUS

OCTETS = {"Content-Type": "application/offset+octet-stream"}


def create(server, length=None, **headers):
    headers = {**TUS, **headers}
    if length is not None:
        headers["Upload-Length"] = str(length)
    answer = requests.post(server.url + "/files/", headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.headers["Location"]


def patch(url, data, offset, **headers):
    return requests.patch(url, data=data, headers={**TUS, **OCTETS, "Upload-Offset": str(offset), **headers})


def test_options_announces_every_extension(live_server):
    answer = requests.options(live_server.url + "/files/")
    assert answer.status_code == 204
    assert set(answer.headers["Tus-Extension"].split(",")) == {
        "creation", "creation-with-upload", "creation-defer-length", "termination", "checksum", "expiration",
        "concatenation"}
    assert answer.headers["Tus-Version"] == "1.0.0"
    assert answer.headers["Tus-Max-Size"] == str(64 * 1024 ** 2)
    assert set(answer.headers["Tus-Checksum-Algorithm"].split(",")) == {"md5", "sha1", "sha256"}


def test_upload_in_chunks_is_recorded_with_sha256(live_server, app):
    from gateway.models import File
    data = os.urandom(3 * 1024 * 1024 + 17)
    meta = "filename " + base64.b64encode("Сценарий.pdf".encode()).decode() + ",filetype " + \
        base64.b64encode(b"application/pdf").decode()
    url = create(live_server, len(data), **{"Upload-Metadata": meta})
    assert url.startswith(live_server.url + "/files/") and url.endswith("/")
    head = requests.head(url, headers=TUS)
    assert head.headers["Upload-Offset"] == "0" and "Upload-Expires" in head.headers
    assert head.headers["Cache-Control"] == "no-store"
    offset = 0
    for size in (1024 * 1024, 2 * 1024 * 1024, 17):
        answer = patch(url, data[offset:offset + size], offset)
        assert answer.status_code == 204, answer.text
        offset += size
        assert answer.headers["Upload-Offset"] == str(offset)
    head = requests.head(url, headers=TUS)
    assert head.headers["Upload-Offset"] == str(len(data)) == head.headers["Upload-Length"]
    assert "Upload-Expires" not in head.headers
    file = File.query.get(url.rstrip("/").rsplit("/", 1)[1])
    assert file.state == "complete" and file.length == len(data)
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert file.filename == "Сценарий.pdf" and file.content_type == "application/pdf"


def test_offset_mismatch_is_409_with_current_offset(live_server):
    url = create(live_server, 10)
    assert patch(url, b"abc", 0).status_code == 204
    answer = patch(url, b"xyz", 1)
    assert answer.status_code == 409 and answer.headers["Upload-Offset"] == "3"
    assert "does not match" in answer.text


def test_delete_then_410(live_server, app):
    from gateway.models import File
    url = create(live_server, 10)
    assert requests.delete(url, headers=TUS).status_code == 204
    assert requests.head(url, headers=TUS).status_code == 410
    assert patch(url, b"a", 0).status_code == 410
    assert File.query.get(url.rstrip("/").rsplit("/", 1)[1]).state == "terminated"


def test_behind_a_proxy_location_carries_the_public_address(server_factory):
    server = server_factory(TRUST_PROXY=1)
    answer = requests.post(server.url + "/files/", headers={
        **TUS, "Upload-Length": "5", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "rating.example.org",
        "X-Forwarded-Prefix": "/gateway", "X-Forwarded-For": "203.0.113.9"})
    assert answer.status_code == 201
    assert answer.headers["Location"].startswith("https://rating.example.org/gateway/files/")


def test_without_trust_proxy_forwarded_headers_are_ignored(live_server):
    answer = requests.post(live_server.url + "/files/", headers={
        **TUS, "Upload-Length": "5", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
    assert answer.headers["Location"].startswith(live_server.url + "/files/")
