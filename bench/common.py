"""Shared parts of the download, SSE and rotation benchmarks (bench/*_bench.py).

Process handling is upload_bench.py's (`Proc`, `Procs`: each child in a process group of its own, the whole
group stopped on exit); this module adds the gateway stack those benchmarks need on loopback: a migrated
database (SQLite in the temp directory, or a PostgreSQL database of its own), the machine's Redis (one
database number, flushed at the start), gunicorn as in the Procfile's `web` line, the Procfile's `worker`, a
dummy analyzer that answers 200, and the Markdown report under bench/out/.
"""
from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(BENCH.parent))  # the project (gateway, workers, admin), as `python -m` from the root sees it

from upload_bench import (  # noqa: E402  (reused as they are: the process-group handling)
    MB, MIB, OUT, ROOT, TUS, BenchError, Proc, Procs, children, free_port, git_revision, log, make_file, request,
    run,
)

__all__ = ["MB", "MIB", "OUT", "ROOT", "TUS", "BenchError", "Proc", "Procs", "children", "free_port", "log",
           "make_file", "request", "run", "Stack", "Web", "Receiver", "pct", "verdict", "write_report",
           "bench_main", "py_spy", "profile_pids", "raise_nofile", "header_lines"]

PYTHON = ROOT / ".venv" / "bin" / "python"
DEFAULT_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
DEFAULT_POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/bench_gateway")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def pct(values, q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def raise_nofile(wanted: int = 20000) -> int:
    """Raise the soft open-files limit (inherited by the processes started after) as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def procfile_line(name: str) -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return shlex.split(line[len(name) + 1:].strip())
    raise BenchError(f"the Procfile has no {name}: line")


# -- the dummy analyzer --------------------------------------------------------------------------------------

class Receiver:
    """A local analyzer endpoint in a thread: answers 200 to every POST and keeps the time of each."""

    def __init__(self):
        self.times: list[float] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                receiver.times.append(time.time())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the gateway ---------------------------------------------------------------------------------------------

class Web:
    def __init__(self, proc: Proc, port: int):
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid)

    def wait_ready(self, workers: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise BenchError(f"gunicorn exited at start-up:\n{self.proc.log_tail()}")
            try:
                status, _, _ = request("GET", self.url + "/healthz", timeout=3)
                if status == 200 and len(self.worker_pids()) >= workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"gunicorn did not answer within {timeout:.0f} s:\n{self.proc.log_tail()}")


class Stack:
    """One installation of the gateway in a temp directory: env, schema, Redis, and the processes started."""

    def __init__(self, tmp: Path, procs: Procs, *, redis_url: str = DEFAULT_REDIS_URL, database: str = "sqlite",
                 postgres_url: str = DEFAULT_POSTGRES, **settings):
        self.tmp = tmp
        self.procs = procs
        self.redis_url = redis_url
        self.database = database
        instance, media = tmp / "instance", tmp / "media"
        instance.mkdir(parents=True, exist_ok=True)
        media.mkdir(parents=True, exist_ok=True)
        self.media_root = media
        if database == "sqlite":
            self.database_url = f"sqlite:///{instance / 'gw.db'}"
        elif database == "postgresql":
            self.database_url = postgres_url
        else:
            raise BenchError(f"unknown database {database!r}")
        env = dict(os.environ)
        for name in ("PUBLIC_URL", "TRUST_PROXY", "ANALYZER_URL", "PORT", "WEB_CONCURRENCY"):
            env.pop(name, None)
        env.update(
            PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            HOST="127.0.0.1",
            INSTANCE_DIR=str(instance),
            MEDIA_ROOT=str(media),
            DATABASE_URL=self.database_url,
            REDIS_URL=redis_url,
            UPLOAD_MAX_SIZE=str(16 * 1024 ** 3),
            ACCESS_LOG="/dev/null",
            LOG_LEVEL="WARNING",
            # The same secrets for every process of this stack (the bench process included).
            SECRET_KEY=base64.b16encode(os.urandom(32)).decode().lower(),
            ANALYZER_TOKEN=base64.urlsafe_b64encode(os.urandom(24)).decode(),
        )
        env.update({key: str(value) for key, value in settings.items()})
        self.env = env
        self.port = free_port()
        self.env["PORT"] = str(self.port)
        self.env["PUBLIC_URL"] = f"http://127.0.0.1:{self.port}"
        self.web: Web | None = None
        self.worker: Proc | None = None

    # -- set-up --
    def prepare(self) -> None:
        """An empty database with the schema, and an empty Redis database."""
        import redis as redis_lib

        parts = urlsplit(self.redis_url)
        try:
            socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=3).close()
        except OSError as error:
            raise BenchError(f"no Redis at {self.redis_url}: {error}")
        client = redis_lib.Redis.from_url(self.redis_url)
        client.flushdb()
        client.close()
        if self.database == "postgresql":
            self._fresh_postgres()
        log(f"creating the schema ({self.database}: flask db upgrade)")
        run([str(PYTHON), "-m", "flask", "--app", "gateway.wsgi", "db", "upgrade"], env=self.env,
            what="flask db upgrade")

    def _fresh_postgres(self) -> None:
        from sqlalchemy import create_engine, text

        parts = urlsplit(self.database_url)
        name = parts.path.lstrip("/")
        admin = self.database_url.rsplit("/", 1)[0] + "/postgres"
        engine = create_engine(admin.replace("postgresql://", "postgresql+psycopg2://", 1),
                               isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                    log(f"creating the PostgreSQL database {name}")
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as error:
            raise BenchError(f"PostgreSQL at {admin} not usable: {error}")
        finally:
            engine.dispose()
        engine = create_engine(self.database_url.replace("postgresql://", "postgresql+psycopg2://", 1))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()

    # -- processes --
    def start_web(self, workers: int, label: str = "web", config: str | None = None) -> Web:
        """The Procfile's web line; `config` replaces its --config file (to try a variant without editing it)."""
        env = {**self.env, "WEB_CONCURRENCY": str(workers)}
        argv = procfile_line("web")
        if config:
            argv[argv.index("--config") + 1] = str(Path(config).resolve())
        proc = self.procs.start(f"gunicorn ({label})", argv, cwd=ROOT, env=env,
                                log_path=self.tmp / f"{label}.log")
        self.web = Web(proc, self.port)
        self.web.wait_ready(workers)
        return self.web

    def stop_web(self) -> None:
        if self.web:
            self.procs.stop(self.web.proc)
            self.web = None

    def start_worker(self, timeout: float = 60) -> Proc:
        """The Procfile's `worker` (a supervisor over three RQ workers); returns once all three registered."""
        from datetime import datetime, timedelta, timezone

        import redis as redis_lib
        from rq import Worker

        argv = procfile_line("worker")
        if argv[0] == "python":
            argv[0] = str(PYTHON)
        started = datetime.now(timezone.utc) - timedelta(seconds=1)
        self.worker = self.procs.start("worker", argv, cwd=ROOT, env=self.env, log_path=self.tmp / "worker.log")
        connection = redis_lib.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.worker.alive():
                    raise BenchError(f"the worker exited at start-up:\n{self.worker.log_tail()}")
                names = {w.name.split("-")[0] for w in Worker.all(connection=connection)
                         if w.birth_date and w.birth_date.replace(tzinfo=timezone.utc) >= started}
                if {"scheduler", "handoff", "analyzer"} <= names:
                    return self.worker
                time.sleep(0.2)
        finally:
            connection.close()
        raise BenchError(f"the worker's three RQ workers did not register:\n{self.worker.log_tail()}")

    def worker_role_pid(self, role: str) -> int:
        for pid in children(self.worker.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--role" in argv and argv[argv.index(b"--role") + 1].decode() == role:
                return pid
        raise BenchError(f"no worker process with --role {role}")

    # -- the API --
    def upload_small(self, data: bytes, filename: str = "script.txt") -> str:
        """creation-with-upload of a few bytes; the file ID."""
        meta = (f"filename {base64.b64encode(filename.encode()).decode()},"
                f"filetype {base64.b64encode(b'text/plain').decode()}")
        status, headers, body = request("POST", self.web.url + "/files/", {
            **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta,
            "Content-Type": "application/offset+octet-stream"}, data)
        if status != 201 or headers.get("upload-offset") != str(len(data)):
            raise BenchError(f"upload answered {status}: {body[:300]!r}")
        return headers["location"].rstrip("/").rsplit("/", 1)[-1]

    def upload_big(self, path: Path) -> str:
        """POST, then one PATCH of the whole file streamed by curl; the file ID."""
        size = path.stat().st_size
        meta = (f"filename {base64.b64encode(path.name.encode()).decode()},"
                f"filetype {base64.b64encode(b'application/pdf').decode()}")
        status, headers, body = request("POST", self.web.url + "/files/", {
            **TUS, "Upload-Length": str(size), "Upload-Metadata": meta, "Content-Length": "0"}, b"")
        if status != 201:
            raise BenchError(f"POST /files/ answered {status}: {body[:300]!r}")
        url = headers["location"].rstrip("/")  # without the slash: curl -T appends the file's name to a URL ending in /
        if url.startswith("/"):
            url = self.web.url + url
        result = subprocess.run(
            ["curl", "--silent", "--show-error", "--output", "/dev/null", "--max-time", "1800", "-X", "PATCH",
             "-T", str(path), "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
             "-H", "Content-Type: application/offset+octet-stream", "-H", "Expect:",
             "--write-out", "%{http_code}", url], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0 or result.stdout.strip() != "204":
            raise BenchError(f"PATCH failed ({result.returncode}, {result.stdout!r}): {result.stderr}")
        return url.rsplit("/", 1)[-1]

    def submit(self, file_id: str) -> int:
        # The analyzer's bearer token stands in for the browser's CSRF token.
        status, _, body = request("POST", self.web.url + "/cinema/", {
            "Content-Type": "application/json", "Authorization": f"Bearer {self.env['ANALYZER_TOKEN']}"},
            json.dumps({"file_id": file_id, "target_audience": "12+"}).encode())
        if status != 201:
            raise BenchError(f"POST /cinema/ answered {status}: {body[:300]!r}")
        return json.loads(body)["id"]

    def engine(self):
        from sqlalchemy import create_engine

        url = self.database_url
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg2://" + url[len("postgresql://"):]
        return create_engine(url)

    def current_key(self, analysis_id: int) -> str:
        from sqlalchemy import text

        engine = self.engine()
        try:
            with engine.connect() as conn:
                key = conn.execute(text(
                    "SELECT k.key FROM refer_session s JOIN refer_key k ON k.id = s.current_key_id "
                    "WHERE s.analysis_id = :a ORDER BY s.id DESC LIMIT 1"), {"a": analysis_id}).scalar()
        finally:
            engine.dispose()
        if not key:
            raise BenchError(f"analysis {analysis_id} has no live refer key")
        return key

    def data_path(self, file_id: str) -> Path:
        return self.media_root / "uploads" / file_id[:2] / file_id


# -- profiling -----------------------------------------------------------------------------------------------

def py_spy() -> str | None:
    for candidate in (ROOT / ".venv" / "bin" / "py-spy", BENCH / "peers" / ".venv" / "bin" / "py-spy"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("py-spy")


def profile_pids(pids: dict[str, int], seconds: float, stamp: str, tmp: Path, idle: bool = False) -> list[str]:
    """py-spy record of each named process for `seconds` (in parallel); raw files in bench/out/ and a summary:
    self time of the hottest frames, and inclusive time of the project's own frames (gateway/, workers/)."""
    spy = py_spy()
    if not spy:
        return ["(py-spy not found: `.venv/bin/pip install py-spy` to profile)"]
    OUT.mkdir(exist_ok=True)
    running = []
    for name, pid in pids.items():
        raw = OUT / f"profile-{stamp}-{name}.txt"
        argv = [spy, "record", "--pid", str(pid), "--rate", "100", "--duration", str(int(max(1, seconds))),
                "--format", "raw", "--output", str(raw), "--nonblocking"]
        if idle:
            argv.append("--idle")
        running.append((name, raw, subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                                    stderr=open(tmp / f"py-spy-{name}.log", "wb"),
                                                    start_new_session=True)))
    lines = []
    for name, raw, popen in running:
        try:
            popen.wait(seconds + 60)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
        lines.append(f"### py-spy{' (idle included)' if idle else ''}: {name}, {seconds:.0f} s — "
                     f"{raw.relative_to(ROOT)}")
        lines += summarize_profile(raw)
    return lines


def summarize_profile(raw: Path, top: int = 12) -> list[str]:
    if not raw.exists():
        return ["(py-spy wrote nothing)"]
    self_counts: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return ["(no samples)"]
    out = ["", f"{total} samples", "", "| self % | innermost frame |", "| ---: | --- |"]
    for frame, n in sorted(self_counts.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"| {100 * n / total:.1f} | `{frame}` |")
    ours = [(f, n) for f, n in inclusive.items()
            if any(mark in f for mark in ("(gateway/", "(workers/", "/main/gateway/", "/main/workers/"))]
    out += ["", "| incl. % | our frames |", "| ---: | --- |"]
    for frame, n in sorted(ours, key=lambda kv: -kv[1])[:top + 6]:
        out.append(f"| {100 * n / total:.1f} | `{frame}` |")
    out.append("")
    return out


# -- the report ----------------------------------------------------------------------------------------------

LOAD_AT_START = os.getloadavg()[0]


def header_lines(title: str, started: dt.datetime, notes: str) -> list[str]:
    import importlib.metadata as md

    def version(name):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "?"

    return [
        f"## {title}, {started.strftime('%Y-%m-%d %H:%M UTC')}, gateway at {git_revision()}",
        "",
        f"Loopback, {os.cpu_count()} cores (shared), load average {LOAD_AT_START:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end. "
        f"Python {platform.python_version()}, gunicorn {version('gunicorn')} (gevent {version('gevent')}), "
        f"SQLAlchemy {version('SQLAlchemy')}, redis-py {version('redis')}, rq {version('rq')}. " + notes,
        "",
    ]


def write_report(name: str, text: str, stamp: str, quick: bool) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}-{stamp}{'-quick' if quick else ''}.md"
    path.write_text(text)
    (OUT / f"{name}-latest.md").write_text(text)
    print(text, flush=True)
    log(f"written to {path.relative_to(ROOT)}")
    return path


def bench_main(body, args, prefix: str) -> int:
    """Run `body(procs, tmp, started, stamp)`; stop every process started and remove the temp directory on
    return, error, Ctrl-C, SIGTERM or SIGHUP."""
    started = dt.datetime.now(dt.timezone.utc)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        body(procs, tmp, started, stamp)
        return 0
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        return 130
    except BenchError as error:
        log(f"error: {error}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        procs.stop_all()
        if getattr(args, "keep_tmp", False):
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
