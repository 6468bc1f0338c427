"""Fault drills: the server killed mid-PATCH, clients that vanish or hang, SIGTERM with bodies in flight."""
import hashlib
import os
import signal
import socket
import time

import pytest
import requests

from conftest import TUS

MIB = 1024 * 1024


def create(server, length):
    answer = requests.post(server.url + "/files/", headers={**TUS, "Upload-Length": str(length)})
    assert answer.status_code == 201, answer.text
    return answer.headers["Location"]


def head_offset(url, timeout=10) -> int:
    answer = requests.head(url, headers=TUS, timeout=timeout)
    assert answer.status_code == 200, answer.status_code
    return int(answer.headers["Upload-Offset"])


def open_patch(server, url, offset, content_length) -> socket.socket:
    """Start a PATCH by hand and return the socket, so a test can send part of the body and then misbehave."""
    path = url[len(server.url):]
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall((f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
                  f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
                  f"Content-Length: {content_length}\r\n\r\n").encode())
    return sock


def wait_for_offset(url, at_least, timeout=15) -> int:
    deadline = time.monotonic() + timeout
    while True:
        offset = head_offset(url)
        if offset >= at_least or time.monotonic() > deadline:
            return offset
        time.sleep(0.1)


def finish(url, data, offset):
    answer = requests.patch(url, data=data[offset:], headers={
        **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})
    assert answer.status_code == 204, answer.text
    assert int(answer.headers["Upload-Offset"]) == len(data)


def stored_sha256(settings, url) -> str:
    upload_id = url.rstrip("/").rsplit("/", 1)[1]
    digest = hashlib.sha256()
    with open(settings.uploads_dir / upload_id[:2] / upload_id, "rb") as handle:
        while block := handle.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def test_kill_9_mid_patch_then_resume_is_byte_identical(server_factory, settings, app):
    from gateway.models import File
    server = server_factory()
    data = os.urandom(24 * MIB + 123)
    url = create(server, len(data))
    sock = open_patch(server, url, 0, len(data))
    sock.sendall(data[:10 * MIB + 7])
    time.sleep(1.0)  # let the server write what arrived
    server.kill9()
    sock.close()

    server.start()  # same port, same state on disk and in the database
    offset = head_offset(url)  # may wait for the dead holder's lock to run out, a few seconds at most
    assert 0 < offset <= 10 * MIB + 7
    finish(url, data, offset)
    assert stored_sha256(settings, url) == hashlib.sha256(data).hexdigest()
    file = File.query.get(url.rstrip("/").rsplit("/", 1)[1])
    assert file.state == "complete" and file.sha256 == hashlib.sha256(data).hexdigest()


def test_client_that_cuts_its_connection_keeps_every_byte_that_arrived(live_server, settings):
    data = os.urandom(9 * MIB)
    url = create(live_server, len(data))
    sock = open_patch(live_server, url, 0, len(data))
    sent = 3 * MIB + 4321  # not a multiple of the server's read size
    sock.sendall(data[:sent])
    sock.shutdown(socket.SHUT_WR)
    sock.close()
    assert wait_for_offset(url, sent) == sent
    finish(url, data, sent)
    assert stored_sha256(settings, url) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("newcomer", ["HEAD", "PATCH"])
def test_request_after_a_hanging_patch_takes_over_within_seconds(live_server, settings, redis_client, newcomer):
    data = os.urandom(6 * MIB)
    url = create(live_server, len(data))
    stale = open_patch(live_server, url, 0, len(data))
    sent = 2 * MIB + 99
    stale.sendall(data[:sent])
    time.sleep(0.5)  # the stale request now holds the lock and waits for bytes that never come

    started = time.monotonic()
    if newcomer == "HEAD":
        offset = head_offset(url, timeout=30)
        assert offset == sent
    else:
        answer = requests.patch(url, data=data[sent:], headers={
            **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(sent)}, timeout=30)
        assert answer.status_code == 204, answer.text
    assert time.monotonic() - started < 5
    if newcomer == "HEAD":
        finish(url, data, sent)
    stale.close()
    assert stored_sha256(settings, url) == hashlib.sha256(data).hexdigest()
    assert int(redis_client.hget("metrics:counters", "upload_lock_takeovers_total")) >= 1


def test_patch_with_checksum_cut_off_keeps_nothing(live_server):
    import base64
    data = os.urandom(3 * MIB)
    url = create(live_server, len(data))
    path = url[len(live_server.url):]
    sock = socket.create_connection(("127.0.0.1", live_server.port))
    digest = base64.b64encode(hashlib.sha1(data).digest()).decode()
    sock.sendall((f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                  f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                  f"Upload-Checksum: sha1 {digest}\r\nContent-Length: {len(data)}\r\n\r\n").encode())
    sock.sendall(data[:2 * MIB])
    time.sleep(0.5)
    sock.close()
    time.sleep(0.5)
    assert head_offset(url) == 0


def test_sigterm_saves_what_arrived_of_a_body_in_flight(server_factory, settings):
    server = server_factory()
    data = os.urandom(5 * MIB)
    url = create(server, len(data))
    sock = open_patch(server, url, 0, len(data))
    sent = MIB + 5555
    sock.sendall(data[:sent])
    time.sleep(0.5)
    started = time.monotonic()
    os.killpg(server.process.pid, signal.SIGTERM)
    server.process.wait(20)
    assert time.monotonic() - started < 10
    sock.close()
    server.start()
    offset = head_offset(url)
    assert offset == sent
    finish(url, data, offset)
    assert stored_sha256(settings, url) == hashlib.sha256(data).hexdigest()
