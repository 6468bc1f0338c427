"""Real tus clients against the live gateway: tuspy (Python) and tus-js-client 4 (Node, as the uploader page).

Every test ends the same way: the upload's `File` row is `complete` with the right SHA-256, name and type, and
the bytes on disk are identical to the bytes sent.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from tusclient import client as tus_client
from tusclient.storage import filestorage

from conftest import ROOT, TUS

KIB, MIB = 1024, 1024 ** 2
UPLOAD_SCRIPT = ROOT / "tests" / "js" / "upload.mjs"
FILENAME = "Сценарий — финал (v2).pdf"


# -- helpers ------------------------------------------------------------------------------------------------
def upload_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


@pytest.fixture
def sample(tmp_path):
    """Write `size` random bytes to a file; returns (path, bytes). Sizes are deliberately not chunk-aligned."""
    def make(size: int, name: str = "script.pdf") -> tuple[Path, bytes]:
        data = os.urandom(size)
        path = tmp_path / name
        path.write_bytes(data)
        return path, data
    return make


def fresh_file(upload_url: str):
    """The upload's `File` row as the database has it now (not as this session cached it)."""
    from gateway.extensions import db
    from gateway.models import File
    db.session.expire_all()
    return db.session.get(File, upload_id(upload_url))


def assert_finished(settings, upload_url: str, data: bytes, filename: str, content_type: str) -> None:
    """The finished upload is recorded and stored exactly: row complete, digest right, bytes identical."""
    file = fresh_file(upload_url)
    assert file is not None, f"no File row for {upload_url}"
    assert file.state == "complete", file
    assert file.length == len(data)
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert file.filename == filename
    assert file.content_type == content_type
    assert file.completed_at is not None
    on_disk = settings.uploads_dir / file.id[:2] / file.id
    assert on_disk.stat().st_size == len(data)
    assert hashlib.sha256(on_disk.read_bytes()).digest() == hashlib.sha256(data).digest(), \
        "bytes on disk differ from the bytes uploaded"
    head = requests.head(upload_url, headers=TUS)
    assert head.status_code == 200, head.text
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(len(data))
    assert "Upload-Expires" not in head.headers


def file_ids() -> set[str]:
    from gateway.extensions import db
    from gateway.models import File
    db.session.expire_all()
    return {row.id for row in db.session.query(File).all()}


# -- tuspy --------------------------------------------------------------------------------------------------
def test_tuspy_single_stream_in_small_chunks(live_server, app, settings, sample):
    path, data = sample(3 * MIB + 12345)
    tus = tus_client.TusClient(live_server.url + "/files/")
    uploader = tus.uploader(file_path=str(path), chunk_size=256 * KIB,
                            metadata={"filename": FILENAME, "filetype": "application/pdf"})
    uploader.upload()
    assert uploader.offset == len(data)
    assert uploader.url.startswith(live_server.url + "/files/")
    assert_finished(settings, uploader.url, data, FILENAME, "application/pdf")
    assert file_ids() == {upload_id(uploader.url)}


def test_tuspy_with_sha1_upload_checksum(live_server, app, settings, sample):
    path, data = sample(2 * MIB + 777, name="draft.docx")
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    tus = tus_client.TusClient(live_server.url + "/files/")
    uploader = tus.uploader(file_path=str(path), chunk_size=256 * KIB, upload_checksum=True,
                            metadata={"filename": "draft.docx", "filetype": docx})
    uploader.upload()
    assert uploader.request._request_headers["upload-checksum"].startswith("sha1 ")  # the header really went out
    assert_finished(settings, uploader.url, data, "draft.docx", docx)


def test_tuspy_interrupted_and_resumed_from_url_storage(live_server, app, settings, sample, tmp_path):
    path, data = sample(2 * MIB + 4321, name="script.txt")
    chunk = 256 * KIB
    storage = filestorage.FileStorage(str(tmp_path / "tus-urls.json"))
    tus = tus_client.TusClient(live_server.url + "/files/")
    meta = {"filename": "script.txt", "filetype": "text/plain"}

    first = tus.uploader(file_path=str(path), chunk_size=chunk, metadata=meta, store_url=True, url_storage=storage)
    first.upload(stop_at=3 * chunk)  # the link drops after three chunks
    assert first.offset == 3 * chunk
    head = requests.head(first.url, headers=TUS)
    assert head.headers["Upload-Offset"] == str(3 * chunk) and head.headers["Upload-Length"] == str(len(data))
    assert "Upload-Expires" in head.headers
    assert fresh_file(first.url).state == "uploading"

    # A new process: a fresh uploader finds the URL in its storage and asks the server where to go on.
    second = tus.uploader(file_path=str(path), chunk_size=chunk, metadata=meta, store_url=True,
                          url_storage=storage)
    assert second.url == first.url
    assert second.offset == 3 * chunk
    second.upload()
    assert_finished(settings, first.url, data, "script.txt", "text/plain")
    assert file_ids() == {upload_id(first.url)}


def test_tuspy_resumed_by_url_with_checksum(live_server, app, settings, sample):
    path, data = sample(MIB + 999, name="notes.txt")
    chunk = 128 * KIB
    tus = tus_client.TusClient(live_server.url + "/files/")
    first = tus.uploader(file_path=str(path), chunk_size=chunk, metadata={"filename": "notes.txt"})
    for _ in range(3):
        first.upload_chunk()
    assert first.offset == 3 * chunk

    second = tus_client.TusClient(live_server.url + "/files/").uploader(
        file_path=str(path), url=first.url, chunk_size=chunk, upload_checksum=True)
    assert second.offset == 3 * chunk  # from HEAD
    second.upload()
    # No filetype sent: the type is guessed from the name.
    assert_finished(settings, first.url, data, "notes.txt", "text/plain")


def test_tuspy_across_two_worker_processes(server_factory, app, settings, sample, monkeypatch):
    """Many small PATCHes that alternate between two gunicorn workers; the file stays exact.

    The kernel hands new connections to whichever worker accepts first, which is mostly the same one. So tuspy's
    PATCHes are sent over two keep-alive connections, one held by each worker, in turn; which worker really served
    each PATCH is read from the kernel's socket tables while its response is open.
    """
    server = server_factory(workers=2)
    workers = server.worker_pids()
    assert len(workers) == 2, workers
    pinned = sessions_on_each_worker(server, workers)
    served_by = []

    def record(response, *args, **kwargs):
        served_by.append(serving_worker(response, server.port, workers))

    turn = itertools.count()

    def alternating_patch(url, data=None, **kwargs):
        session = pinned[next(turn) % len(pinned)]
        return session.patch(url, data=data, hooks={"response": record}, **kwargs)

    monkeypatch.setattr("tusclient.request.requests.patch", alternating_patch)
    path, data = sample(2 * MIB + 333)
    chunk = 32 * KIB
    tus = tus_client.TusClient(server.url + "/files/")
    uploader = tus.uploader(file_path=str(path), chunk_size=chunk,
                            metadata={"filename": FILENAME, "filetype": "application/pdf"})
    try:
        uploader.upload()
    finally:
        monkeypatch.undo()
        for session in pinned:
            session.close()
    assert len(served_by) == -(-len(data) // chunk)
    assert set(served_by) == set(workers), f"PATCHes did not reach both workers: {served_by}"
    switches = sum(1 for a, b in zip(served_by, served_by[1:]) if a != b)
    assert switches == len(served_by) - 1, f"PATCHes did not alternate between the workers: {served_by}"
    assert_finished(settings, uploader.url, data, FILENAME, "application/pdf")


def sessions_on_each_worker(server, workers: list[int], attempts: int = 300) -> list[requests.Session]:
    """One keep-alive session per worker: open connections until every worker holds one."""
    found: dict[int, requests.Session] = {}
    spare = []
    try:
        for _ in range(attempts):
            session = requests.Session()
            response = session.get(server.url + "/healthz", stream=True)
            pid = serving_worker(response, server.port, workers)
            response.content  # noqa: B018 - read the body: the connection goes back to the session's pool
            if pid is not None and pid not in found:
                found[pid] = session
                if len(found) == len(workers):
                    return [found[pid] for pid in workers]
            else:
                spare.append(session)  # held open, so the next connection is a new one
        raise AssertionError(f"{attempts} connections never reached every worker {workers}: {list(found)}")
    finally:
        for session in spare:
            session.close()


def serving_worker(response, server_port: int, workers: list[int]) -> int | None:
    """Which gunicorn worker holds the server end of the connection this (still open) response came on."""
    sock = response.raw._connection.sock
    client_port = sock.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == server_port and remote_port == client_port:
                inode = fields[9]
    if inode is None:
        return None
    for pid in workers:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except FileNotFoundError:
                continue
    return None


# -- tus-js-client ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def node_upload():
    """Run tests/js/upload.mjs with tus-js-client 4; fails (does not skip) when Node or the package is missing."""
    node = shutil.which("node")
    package = ROOT / "node_modules" / "tus-js-client" / "package.json"
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 18+ and run `make test`")
    if not package.exists():
        pytest.fail("node_modules/tus-js-client is missing: run `make test` (it runs `npm install`), "
                    "or `npm install` in the project root")
    version = json.loads(package.read_text())["version"]
    assert version.split(".")[0] == "4", f"tus-js-client {version} installed, package.json asks for ^4"

    def run(endpoint: str, file: Path, *args: str) -> dict:
        done = subprocess.run([node, str(UPLOAD_SCRIPT), endpoint, str(file), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"tus-js-client upload failed ({done.returncode}):\n{done.stderr}"
        return json.loads(done.stdout.strip().splitlines()[-1])
    return run


@pytest.mark.parametrize("workers", [1, 2])
def test_tus_js_client_parallel_uploads_concatenate(server_factory, app, settings, sample, node_upload, workers):
    """parallelUploads: 4 partial uploads at once (on one or two web processes), then the final upload."""
    server = server_factory(workers=workers)
    path, data = sample(6 * MIB + 54321)
    result = node_upload(server.url + "/files/", path, "--parallel", "4", "--filename", FILENAME,
                         "--filetype", "application/pdf")
    final = result["url"]
    assert len(result["partialUrls"]) == 4, result["requests"]
    posts = [r for r in result["requests"] if r["method"] == "POST"]
    assert all(r["status"] == 201 for r in posts), posts
    finals = [r for r in posts if r.get("requestConcat", "").startswith("final;")]
    assert len(finals) == 1 and upload_id(finals[0]["Location"]) == upload_id(final), posts
    named = [upload_id(url) for url in finals[0]["requestConcat"][len("final;"):].split()]
    assert sorted(named) == sorted(upload_id(url) for url in result["partialUrls"])

    assert_finished(settings, final, data, FILENAME, "application/pdf")
    head = requests.head(final, headers=TUS)
    assert head.headers["Upload-Concat"].startswith("final;")
    assert [upload_id(url) for url in head.headers["Upload-Concat"][len("final;"):].split()] == named
    # Only the final upload is a file; the parts are not (whether they are still kept or already removed).
    assert file_ids() == {upload_id(final)}
    for part in result["partialUrls"]:
        answer = requests.head(part, headers=TUS)
        assert answer.status_code in (200, 404, 410), answer.text
        if answer.status_code == 200:
            assert answer.headers.get("Upload-Concat") == "partial"


def test_tus_js_client_single_stream_in_chunks(live_server, app, settings, sample, node_upload):
    path, data = sample(4 * MIB + 17, name="treatment.txt")
    result = node_upload(live_server.url + "/files/", path, "--chunk-size", str(MIB), "--filename", "treatment.txt",
                         "--filetype", "text/plain")
    patches = [r for r in result["requests"] if r["method"] == "PATCH"]
    assert len(patches) == 5 and all(r["status"] == 204 for r in patches), patches
    assert [int(r["Upload-Offset"]) for r in patches] == [MIB, 2 * MIB, 3 * MIB, 4 * MIB, 4 * MIB + 17]
    assert result["partialUrls"] == []
    assert_finished(settings, result["url"], data, "treatment.txt", "text/plain")
    assert file_ids() == {upload_id(result["url"])}


@pytest.mark.parametrize("abort_at", ["chunk", "progress"])
def test_tus_js_client_aborted_and_resumed_by_upload_url(live_server, app, settings, sample, node_upload, abort_at):
    """abort(false) after the first acknowledged chunk, or mid-PATCH (half of the first chunk sent over a slow
    link), then a new Upload with the same uploadUrl: HEAD gives the offset at once and the upload finishes."""
    path, data = sample(5 * MIB + 4099, name="episode.pdf")
    result = node_upload(live_server.url + "/files/", path, "--chunk-size", str(MIB), "--filename", "episode.pdf",
                         "--filetype", "application/pdf", "--abort-at", abort_at, "--throttle", str(4 * MIB))
    exchanges = result["requests"]
    resumed = result["resumedFrom"]
    assert resumed is not None, exchanges
    if abort_at == "chunk":
        assert resumed == MIB, exchanges
    else:
        # The first PATCH was cut off: no response to it, and what arrived of its body (no checksum) is kept.
        assert [r["method"] for r in exchanges[:2]] == ["POST", "HEAD"], exchanges
        assert 0 < resumed < MIB, f"HEAD after a PATCH cut off mid-body reported {resumed}: {exchanges}"
    assert result["resumeHeadMs"] < 5000, f"HEAD waited {result['resumeHeadMs']} ms for the stale PATCH"
    creations = [r for r in exchanges if r["method"] == "POST"]
    assert len(creations) == 1, "the resumed upload created a new upload instead of resuming"
    patches = [r for r in exchanges if r["method"] == "PATCH"]
    assert all(r["status"] == 204 for r in patches), patches
    assert_finished(settings, result["url"], data, "episode.pdf", "application/pdf")
    assert file_ids() == {upload_id(result["url"])}
