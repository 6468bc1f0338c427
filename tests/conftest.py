"""Fixtures that give tests the real parts: PostgreSQL or SQLite, the machine's Redis, gunicorn as in the Procfile.

`TEST_DATABASE=postgresql` (or `sqlite`, the default) picks the database; `make test` runs the suite on both.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis as redis_lib
import requests
from sqlalchemy import create_engine, inspect, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import create_app  # noqa: E402
from gateway.config import Settings  # noqa: E402

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
TUS = {"Tus-Resumable": "1.0.0"}
# Every worker a test starts would otherwise fit the analyzer's model anew (seconds each); the file name changes
# with the corpus and the code, so a kept model is never stale.
os.environ.setdefault("ANALYZER_CACHE_DIR", str(ROOT / ".pytest_cache" / "analyzer-model"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    """One migrated database per test session; tables are emptied between tests."""
    if os.environ.get("TEST_DATABASE", "sqlite") == "postgresql":
        url = POSTGRES_URL
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'gateway.db'}"
    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=TEST_REDIS_URL,
               INSTANCE_DIR=str(tmp_path_factory.mktemp("migrate-instance")))
    subprocess.run([sys.executable, "-m", "flask", "--app", "gateway.wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    return url


@pytest.fixture
def redis_client():
    client = redis_lib.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.close()


def empty_tables(database_url: str) -> None:
    """Every table emptied (the schema and its migration stamp stay)."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for table in reversed(inspect(conn).get_table_names()):
            if table != "alembic_version":
                conn.execute(text(f'DELETE FROM "{table}"'))
    engine.dispose()


@pytest.fixture
def settings(tmp_path, database_url, redis_client) -> Settings:
    empty_tables(database_url)
    return Settings.from_env({
        "INSTANCE_DIR": str(tmp_path / "instance"), "MEDIA_ROOT": str(tmp_path / "media"),
        "DATABASE_URL": database_url, "REDIS_URL": TEST_REDIS_URL, "UPLOAD_MAX_SIZE": str(64 * 1024 ** 2),
    })


@pytest.fixture
def app(settings):
    application = create_app(settings)
    with application.app_context():
        yield application
        from gateway.extensions import db
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


class ProcessGroup:
    """A process started in a session of its own, stopped with everything it started."""
    process: subprocess.Popen | None

    def kill9(self) -> None:
        """kill -9 every process of the group at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()


@dataclass
class LiveServer(ProcessGroup):
    """gunicorn started exactly as the Procfile's `web` line, on a free loopback port."""
    env: dict
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LiveServer":
        env = dict(self.env, PORT=str(self.port), WEB_CONCURRENCY=str(self.workers))
        log = open(self.log_path, "ab")
        # Start the Procfile's web command through the shell, in a process group of its own.
        command = (ROOT / "Procfile").read_text().split("web:", 1)[1].splitlines()[0].strip()
        self.process = subprocess.Popen(["/bin/sh", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer: {self.log_path.read_text()[-3000:]}")


    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]


def settings_env(settings: Settings) -> dict:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return dict(os.environ, PATH=path, INSTANCE_DIR=str(settings.instance_dir), MEDIA_ROOT=str(settings.media_root),
                DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url,
                UPLOAD_MAX_SIZE=str(settings.upload_max_size), SECRET_KEY=settings.secret_key,
                ANALYZER_TOKEN=settings.analyzer_token, ACCESS_LOG="-")


@pytest.fixture
def server_factory(settings, tmp_path):
    started: list[LiveServer] = []

    def start(workers: int = 1, **extra_env) -> LiveServer:
        env = settings_env(settings)
        env.update({key: str(value) for key, value in extra_env.items()})
        server = LiveServer(env=env, workers=workers, log_path=tmp_path / f"gunicorn-{len(started)}.log")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live_server(server_factory) -> LiveServer:
    return server_factory()


@dataclass
class WorkerProcess(ProcessGroup):
    """The Procfile's `worker` line, started for real."""
    env: dict
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        command = (ROOT / "Procfile").read_text().split("worker:", 1)[1].splitlines()[0].strip()
        self.process = subprocess.Popen(["/bin/sh", "-c", f"exec {command}"], cwd=ROOT, env=self.env,
                                        stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Until all three RQ workers of the supervisor have registered with Redis."""
        from datetime import datetime, timedelta, timezone

        from rq import Worker
        connection = redis_lib.Redis.from_url(self.env["REDIS_URL"])
        started = datetime.now(timezone.utc) - timedelta(seconds=1)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
                names = {w.name.split("-")[0] for w in Worker.all(connection=connection)
                         if w.birth_date and w.birth_date.replace(tzinfo=timezone.utc) >= started}
                if {"scheduler", "handoff", "analyzer"} <= names:
                    return
                time.sleep(0.1)
        finally:
            connection.close()
        raise RuntimeError(f"worker not ready: {self.log_path.read_text()[-3000:]}")



@pytest.fixture(scope="session")
def analyzer_model():
    """Fits (or loads) the built-in analyzer's scene model once, into the cache every worker reads, so that no
    worker's start waits for a fit."""
    from workers.classifier import model
    return model(Path(os.environ["ANALYZER_CACHE_DIR"]))


@pytest.fixture
def worker_factory(settings, tmp_path, analyzer_model):
    started: list[WorkerProcess] = []

    def start(**extra_env) -> WorkerProcess:
        env = settings_env(settings)
        env.update({key: str(value) for key, value in extra_env.items()})
        worker = WorkerProcess(env=env, log_path=tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


def upload_file(server_url: str, data: bytes, filename: str = "script.txt", filetype: str = "text/plain") -> str:
    """Upload `data` in one creation-with-upload request; returns the file ID."""
    import base64
    meta = f"filename {base64.b64encode(filename.encode()).decode()},filetype {base64.b64encode(filetype.encode()).decode()}"
    headers = {**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta}
    if data:  # creation-with-upload; an empty file is complete at creation
        headers["Content-Type"] = "application/offset+octet-stream"
    answer = requests.post(server_url + "/files/", data=data, headers=headers)
    assert answer.status_code == 201, answer.text
    assert requests.head(answer.headers["Location"], headers=TUS).headers["Upload-Offset"] == str(len(data))
    return answer.headers["Location"].rstrip("/").rsplit("/", 1)[1]


def start_upload(server_url: str, length: int) -> str:
    answer = requests.post(server_url + "/files/", headers={**TUS, "Upload-Length": str(length)})
    assert answer.status_code == 201, answer.text
    return answer.headers["Location"]


class HandoffReceiver:
    """A local analyzer endpoint: records every hand-off and answers with the statuses it is given."""

    def __init__(self, statuses=()):
        import http.server
        import threading
        self.statuses = list(statuses)
        self.received: list[dict] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append({"body": body, "headers": dict(self.headers), "at": time.time()})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(HandoffReceiver(statuses))
        return made[-1]

    yield make
    for receiver_ in made:
        receiver_.close()


def wait_until(predicate, timeout=15.0, every=0.05, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {message}")


def browser(server_url: str) -> requests.Session:
    """A client that behaves like the uploader's page: session cookie plus X-CSRFToken on its POSTs."""
    session = requests.Session()
    token = session.get(server_url + "/csrftoken/").json()["csrfToken"]
    session.headers["X-CSRFToken"] = token
    return session


@pytest.fixture
def loaded_catalog(app):
    """The project's violations catalog in the database, as `flask load_violations` loads it."""
    from gateway import catalog
    catalog.load(catalog.read_workbook(app.config["SETTINGS"].violations_xlsx))
    return {entry.code: entry for entry in catalog.read_workbook(app.config["SETTINGS"].violations_xlsx)}
