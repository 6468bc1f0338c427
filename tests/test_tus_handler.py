"""The tus package on its own: no Flask, a real disk store and real Redis locks, hooks recorded."""
import hashlib
import io
import threading

import pytest

from gateway.tus import DiskStore, Hooks, RedisLocker, TusHandler, TusRequest

BASE = "http://gw.test/files/"
TUS = {"Tus-Resumable": "1.0.0"}


class BytesBody:
    def __init__(self, data: bytes):
        self._stream = io.BytesIO(data)
        self.broken = False
        self.malformed = None

    def read(self, size):
        return self._stream.read(size)

    def abort(self):
        pass


@pytest.fixture
def recorded():
    return {"created": [], "finished": [], "terminated": [], "progress": []}


@pytest.fixture
def handler(tmp_path, redis_client, recorded):
    hooks = Hooks(created=[lambda info: recorded["created"].append(info.id)],
                  finished=[lambda info: recorded["finished"].append((info.id, info.sha256))],
                  terminated=[lambda info, reason: recorded["terminated"].append((info.id, reason))],
                  progress=[lambda info: recorded["progress"].append(info.offset)])
    return TusHandler(DiskStore(tmp_path / "uploads"), RedisLocker(redis_client), hooks,
                      max_size=1 << 30, expiration_seconds=60)


def request(method, headers=None, body=None):
    headers = {**TUS, **(headers or {})}
    return TusRequest(method=method, headers=headers, base_url=BASE,
                      body=BytesBody(body) if body is not None else None,
                      content_length=len(body) if body is not None else None)


def upload_id(response):
    return response.headers["Location"][len(BASE):].strip("/")


def test_creation_with_upload_completes_and_fires_finished_once(handler, recorded):
    data = b"screenplay" * 1000
    answer = handler.handle(request("POST", {"Upload-Length": str(len(data)),
                                             "Content-Type": "application/offset+octet-stream"}, data))
    assert answer.status == 201 and answer.headers["Upload-Offset"] == str(len(data))
    uid = upload_id(answer)
    # Retries after completion must not fire the hook again.
    for _ in range(3):
        head = handler.handle(request("HEAD"), uid)
        assert head.headers["Upload-Offset"] == str(len(data))
        again = handler.handle(request("PATCH", {"Upload-Offset": str(len(data)),
                                                 "Content-Type": "application/offset+octet-stream"}, b""), uid)
        assert again.status in (204, 403)
    assert recorded["finished"] == [(uid, hashlib.sha256(data).hexdigest())]
    assert recorded["created"] == [uid]


def test_concurrent_final_chunks_fire_finished_exactly_once(handler, recorded):
    data = b"x" * 4096
    uid = upload_id(handler.handle(request("POST", {"Upload-Length": str(len(data))})))
    answers = []

    def send():
        answers.append(handler.handle(request("PATCH", {"Upload-Offset": "0",
                                                        "Content-Type": "application/offset+octet-stream"}, data),
                                      uid).status)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers).count(204) == 1 and all(status in (204, 409, 403) for status in answers)
    assert len(recorded["finished"]) == 1


def test_failed_completion_is_finished_by_the_next_request(handler, recorded):
    failures = [RuntimeError("database away")]

    def flaky(info):
        if failures:
            raise failures.pop()

    handler.hooks.finished.insert(0, flaky)
    data = b"abc"
    uid = upload_id(handler.handle(request("POST", {"Upload-Length": "3"})))
    first = handler.handle(request("PATCH", {"Upload-Offset": "0",
                                             "Content-Type": "application/offset+octet-stream"}, data), uid)
    assert first.status == 503 and b"HEAD" in first.body
    assert recorded["finished"] == []
    head = handler.handle(request("HEAD"), uid)
    assert head.status == 200 and head.headers["Upload-Offset"] == "3"
    assert len(recorded["finished"]) == 1


def test_partial_uploads_fire_no_hooks_and_final_fires_once(handler, recorded):
    parts = []
    for chunk in (b"first half ", b"second half"):
        answer = handler.handle(request("POST", {"Upload-Length": str(len(chunk)), "Upload-Concat": "partial",
                                                 "Content-Type": "application/offset+octet-stream"}, chunk))
        parts.append(answer.headers["Location"])
    assert recorded["created"] == [] and recorded["finished"] == []
    final = handler.handle(request("POST", {"Upload-Concat": "final;" + " ".join(parts)}))
    assert final.status == 201
    uid = upload_id(final)
    head = handler.handle(request("HEAD"), uid)
    assert head.headers["Upload-Length"] == head.headers["Upload-Offset"] == str(len(b"first half second half"))
    assert recorded["finished"] == [(uid, hashlib.sha256(b"first half second half").hexdigest())]
    assert handler.handle(request("PATCH", {"Upload-Offset": "0",
                                            "Content-Type": "application/offset+octet-stream"}, b"x"),
                          uid).status == 403


def test_unverified_bytes_left_by_a_crash_are_cut_back(handler, tmp_path):
    """A checksum PATCH that died mid-body (its marker still there) must not count."""
    uid = upload_id(handler.handle(request("POST", {"Upload-Length": "10"})))
    store = handler.store
    info = store.get(uid)
    writer = store.writer(info, provisional=True)
    writer.write(b"12345")
    writer.close()  # the process "dies" here: no commit, no rollback
    assert store.get(uid).offset == 0  # the marker hides the unverified bytes
    head = handler.handle(request("HEAD"), uid)
    assert head.headers["Upload-Offset"] == "0"
    assert store.data_path(uid).stat().st_size == 0
