#!/usr/bin/env python3
"""Upload benchmark: this gateway against @tus/server (+ @tus/file-store) and tuspyserver, on loopback.

    .venv/bin/python bench/upload_bench.py            # the full run (512 MiB, 32 MiB chunks, 2 GiB, 3 rounds)
    .venv/bin/python bench/upload_bench.py --quick    # a smoke run (64 MiB, 8 MiB chunks, 256 MiB, 1 round)
    .venv/bin/python bench/upload_bench.py --profile  # also record py-spy profiles of our worker

It starts, each in its own process group and temp directory on the same disk:
  * the gateway exactly as the Procfile's `web` line (gunicorn, gevent worker), WEB_CONCURRENCY=1 by default;
  * @tus/server with @tus/file-store (bench/peers, `npm ci` there when node_modules is missing);
  * tuspyserver under uvicorn (one process; bench/peers/.venv is created and filled when missing);
afresh for every round, and measures, running the servers in turn and taking the median of the rounds:
  1. one PATCH of the whole file sent by curl: MB/s per server, ratio ours / @tus/server (target >= 1.5);
  2. tuspy (the Python tus client) uploading the file in chunks: the same (target >= 1.0);
  3. the RSS of our gunicorn worker while it ingests a 2 GiB file (one curl PATCH, then tuspy in chunks):
     baseline, peak, growth (target: growth under 64 MiB).
MB is 10^6 bytes. The table goes to stdout and to bench/out/. Every process started is stopped on exit,
Ctrl-C or error; the temp directory (test files, uploads) is removed unless --keep-tmp.

Needs: curl, node/npm, a Redis (REDIS_URL, default redis://127.0.0.1:6379/8) and the project's dev extra
(tuspy) in the interpreter running this script.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "peers"
PEER_VENV = PEERS / ".venv"
OUT = BENCH / "out"
MIB = 1024 * 1024
MB = 1000 * 1000

OURS, NODE, TUSPY = "gateway (ours)", "@tus/server", "tuspyserver"
SERVERS = (OURS, NODE, TUSPY)

TARGET_CURL_RATIO = 1.5
TARGET_TUSPY_RATIO = 1.0
TARGET_RSS_GROWTH_MIB = 64


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# -- processes -----------------------------------------------------------------------------------------------

class Proc:
    """A child in a process group of its own, output to a log file; `stop` ends the whole group."""

    def __init__(self, name: str, argv: list[str], *, cwd: Path, env: dict, log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
        try:
            if self.alive():
                try:
                    os.killpg(self.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    self.popen.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
            # Whatever is left of the group (a worker whose arbiter died first) goes too.
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.popen.poll() is None:
                self.popen.wait(5)
        finally:
            self._log.close()


class Procs:
    def __init__(self):
        self.items: list[Proc] = []

    def start(self, *args, **kwargs) -> Proc:
        proc = Proc(*args, **kwargs)
        self.items.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.items:
            self.items.remove(proc)

    def stop_all(self) -> None:
        while self.items:
            proc = self.items.pop()
            try:
                proc.stop()
            except Exception as error:  # keep stopping the others
                log(f"stopping {proc.name}: {error}")


def run(argv: list[str], *, cwd: Path = ROOT, env: dict | None = None, what: str = "") -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"{what or argv[0]} failed ({result.returncode}):\n{result.stdout[-3000:]}"
                         f"\n{result.stderr[-3000:]}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# -- HTTP ----------------------------------------------------------------------------------------------------

TUS = {"Tus-Resumable": "1.0.0"}


def request(method: str, url: str, headers: dict | None = None, body: bytes | None = None,
            timeout: float = 60) -> tuple[int, dict, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


@dataclass
class Server:
    name: str
    proc: Proc
    collection: str  # absolute URL of the creation endpoint
    data_dir: Path
    cpu_pid: int = 0  # the process that does the work (our gunicorn worker), for its CPU time

    def usage(self) -> tuple[float, int]:
        """User + system CPU seconds and minor page faults of the working process, all its threads."""
        fields = Path(f"/proc/{self.cpu_pid or self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[7])

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise BenchError(f"{self.name} exited at start-up:\n{self.proc.log_tail()}")
            try:
                status, _, _ = request("OPTIONS", self.collection, TUS, timeout=2)
                if status < 500:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.name} did not answer within {timeout:.0f} s:\n{self.proc.log_tail()}")

    def create(self, length: int) -> str:
        """POST an upload of `length` bytes; its URL, without a trailing slash (curl -T appends names to those)."""
        # filename and filetype: tuspyserver answers HEAD with 400 without them.
        headers = {**TUS, "Upload-Length": str(length), "Content-Length": "0",
                   "Upload-Metadata": "filename YmVuY2guYmlu,filetype YXBwbGljYXRpb24vcGRm"}  # bench.bin, application/pdf
        status, headers, body = request("POST", self.collection, headers, b"")
        if status != 201 or "location" not in headers:
            raise BenchError(f"{self.name}: POST answered {status} {body[:300]!r}")
        return urljoin(self.collection, headers["location"]).rstrip("/")

    def offset(self, url: str) -> int:
        status, headers, body = request("HEAD", url, TUS)
        if status != 200:
            raise BenchError(f"{self.name}: HEAD answered {status} {body[:300]!r}")
        return int(headers["upload-offset"])

    def verify(self, url: str, source: Path) -> None:
        """The stored bytes are the source's: find the upload's data file (named by its id) and compare."""
        upload_id = url.rstrip("/").rsplit("/", 1)[-1]
        stored = [p for p in self.data_dir.rglob(upload_id) if p.is_file()]
        if len(stored) != 1:
            raise BenchError(f"{self.name}: cannot find the data file of {upload_id} under {self.data_dir}")
        if sha256_of(stored[0]) != sha256_of(source, cache=True):
            raise BenchError(f"{self.name}: the stored file differs from what was sent")

    def delete(self, url: str) -> None:
        try:
            request("DELETE", url, TUS)
        except OSError as error:
            log(f"{self.name}: DELETE {url}: {error}")


# -- the servers ---------------------------------------------------------------------------------------------

def procfile_web() -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return shlex.split(line[len("web:"):].strip())
    raise BenchError("the Procfile has no web: line")


def ensure_node_peer() -> None:
    """bench/peers/node_modules from the committed lock file, (re)installed when missing or older than the lock."""
    installed = PEERS / "node_modules" / ".package-lock.json"
    lock = PEERS / "package-lock.json"
    if installed.exists() and (not lock.exists() or installed.stat().st_mtime >= lock.stat().st_mtime):
        return
    if not shutil.which("npm"):
        raise BenchError("npm is needed for the @tus/server peer")
    log("installing @tus/server and @tus/file-store in bench/peers")
    command = ["npm", "ci"] if lock.exists() else ["npm", "install"]
    run(command + ["--no-audit", "--no-fund"], cwd=PEERS, what=" ".join(command))


def ensure_python_peer() -> Path:
    """bench/peers/.venv with tuspyserver and uvicorn, (re)made when requirements.txt changed."""
    python = PEER_VENV / "bin" / "python"
    requirements = PEERS / "requirements.txt"
    stamp = PEER_VENV / ".requirements.sha256"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    if not python.exists():
        log("creating bench/peers/.venv for tuspyserver")
        run([sys.executable, "-m", "venv", str(PEER_VENV)], what="python -m venv")
    log("installing tuspyserver and uvicorn into bench/peers/.venv")
    run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
        what="pip install -r bench/peers/requirements.txt")
    stamp.write_text(wanted)
    return python


def ensure_py_spy() -> Path:
    py_spy = PEER_VENV / "bin" / "py-spy"
    if not py_spy.exists():
        log("installing py-spy into bench/peers/.venv (for --profile)")
        run([str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "py-spy"], what="pip install py-spy")
    return py_spy


@dataclass
class Gateway:
    env: dict
    media_root: Path

    @property
    def uploads_dir(self) -> Path:
        return self.media_root / "uploads"


def gateway_env(tmp: Path, args) -> dict:
    instance = tmp / "gw-instance"
    media = tmp / "gw-media"
    instance.mkdir(exist_ok=True)
    media.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        HOST="127.0.0.1",
        INSTANCE_DIR=str(instance),
        MEDIA_ROOT=str(media),
        DATABASE_URL=f"sqlite:///{instance / 'gw.db'}",
        REDIS_URL=args.redis_url,
        UPLOAD_MAX_SIZE=str(8 * 1024 ** 3),
        WEB_CONCURRENCY=str(args.workers),
        ACCESS_LOG="/dev/null",
    )
    env.pop("PUBLIC_URL", None)
    env.pop("TRUST_PROXY", None)
    for item in args.gateway_env:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def start_gateway(procs: Procs, tmp: Path, env: dict, label: str) -> Server:
    port = free_port()
    env = {**env, "PORT": str(port)}
    proc = procs.start(f"gateway ({label})", procfile_web(), cwd=ROOT, env=env, log_path=tmp / f"gateway-{label}.log")
    server = Server(OURS, proc, f"http://127.0.0.1:{port}/files/", Path(env["MEDIA_ROOT"]))
    server.wait_ready()
    server.cpu_pid = worker_pid(server)
    return server


def worker_pid(server: Server, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(server.proc.pid)
        if kids:
            if len(kids) > 1:
                log(f"the arbiter has {len(kids)} workers; measuring the first ({kids[0]})")
            return kids[0]
        time.sleep(0.1)
    raise BenchError("the gunicorn arbiter has no worker")


def start_node(procs: Procs, tmp: Path, label: str) -> Server:
    port = free_port()
    data = tmp / "node-files"
    data.mkdir(exist_ok=True)
    proc = procs.start("@tus/server", ["node", str(PEERS / "tus_node_server.mjs"), str(port), str(data)],
                       cwd=PEERS, env=dict(os.environ), log_path=tmp / f"node-{label}.log")
    server = Server(NODE, proc, f"http://127.0.0.1:{port}/files", data)
    server.wait_ready()
    return server


def start_tuspy(procs: Procs, tmp: Path, python: Path, label: str) -> Server:
    port = free_port()
    data = tmp / "tuspy-files"
    data.mkdir(exist_ok=True)
    env = {**os.environ, "TUSPY_FILES_DIR": str(data)}
    argv = [str(python), "-m", "uvicorn", "tuspy_server:app", "--app-dir", str(PEERS), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
    proc = procs.start("tuspyserver", argv, cwd=PEERS, env=env, log_path=tmp / f"tuspy-{label}.log")
    server = Server(TUSPY, proc, f"http://127.0.0.1:{port}/files/", data)
    server.wait_ready()
    return server


# -- measurements --------------------------------------------------------------------------------------------

def make_file(path: Path, size: int) -> Path:
    log(f"writing {size // MIB} MiB of random bytes to {path.name}")
    block = 8 * MIB
    with open(path, "wb") as out:
        left = size
        while left:
            out.write(os.urandom(min(block, left)))
            left -= min(block, left)
    return path


_source_digests: dict[Path, str] = {}


def sha256_of(path: Path, cache: bool = False) -> str:
    if cache and path in _source_digests:
        return _source_digests[path]
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 * MIB):
            hasher.update(block)
    if cache:
        _source_digests[path] = hasher.hexdigest()
    return hasher.hexdigest()


PRIME = {"on": True, "dir": Path(tempfile.gettempdir())}


def settle(size: int = 0) -> None:
    """Flush the previous run's dirty pages, then (unless --no-prime) write and delete `size` bytes of scratch.

    On the virtual machines this runs on, memory that stays free for a few seconds is handed back to the host,
    and the next write that lands in it (a file's page cache) costs about ten times the CPU: writing 512 MiB takes
    0.9 s of system time instead of 0.1 s. Whichever server ran right after a pause would pay that. Priming hands
    every server recently used memory for its page cache, as a busy server with a full page cache has.
    """
    os.sync()
    time.sleep(0.3)
    if PRIME["on"] and size:
        path = PRIME["dir"] / "prime.bin"
        block = b"\xa5" * (8 * MIB)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(-(-(size + 64 * MIB) // len(block))):
                os.write(fd, block)
        finally:
            os.close(fd)
            os.unlink(path)  # dirty pages of a deleted file are dropped, not written: freed for the next run


def curl_patch(server: Server, path: Path, verify: bool = False) -> float:
    """One PATCH of the whole file; seconds from connect to the answer. Checks the new offset."""
    size = path.stat().st_size
    url = server.create(size)
    argv = ["curl", "--silent", "--show-error", "--output", "/dev/null", "--dump-header", "-",
            "--max-time", "1800", "-X", "PATCH", "-T", str(path),
            "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
            "-H", "Content-Type: application/offset+octet-stream", "-H", "Expect:",
            "--write-out", r"\nBENCH %{http_code} %{time_total}\n", url]
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    tail = [line for line in result.stdout.splitlines() if line.startswith("BENCH ")]
    if result.returncode != 0 or not tail:
        raise BenchError(f"{server.name}: curl failed ({result.returncode}): {result.stderr.strip()}\n"
                         f"{server.proc.log_tail()}")
    _, code, seconds = tail[-1].split()
    offsets = [line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
               if line.lower().startswith("upload-offset:")]
    if code != "204" or offsets[-1:] != [str(size)]:
        raise BenchError(f"{server.name}: PATCH answered {code}, Upload-Offset {offsets}\n{result.stdout[-500:]}")
    if server.offset(url) != size:
        raise BenchError(f"{server.name}: HEAD after the PATCH does not report {size} bytes")
    if verify:
        server.verify(url, path)
    server.delete(url)
    return float(seconds)


def tuspy_upload(server: Server, path: Path, chunk: int, verify: bool = False) -> float:
    from tusclient import client

    size = path.stat().st_size
    started = time.perf_counter()
    # With metadata: tuspy sends an empty Upload-Metadata header otherwise, which @tus/server refuses (400).
    uploader = client.TusClient(server.collection).uploader(
        file_path=str(path), chunk_size=chunk, metadata={"filename": path.name, "filetype": "application/pdf"})
    try:
        uploader.upload()
    except Exception as error:
        raise BenchError(f"{server.name}: tuspy upload failed: {error!r}\n{server.proc.log_tail()}") from error
    seconds = time.perf_counter() - started
    if uploader.offset != size:
        raise BenchError(f"{server.name}: tuspy ended at offset {uploader.offset} of {size}")
    url = urljoin(server.collection, uploader.url).rstrip("/")
    if server.offset(url) != size:
        raise BenchError(f"{server.name}: HEAD after the tuspy upload does not report {size} bytes")
    if verify:
        server.verify(url, path)
    server.delete(url)
    return seconds


def rotated(items: tuple, turn: int) -> tuple:
    turn %= len(items)
    return items[turn:] + items[:turn]


@dataclass
class Runs:
    """Per server and run: MB/s, and the server's CPU seconds and minor page faults per GiB received."""
    speed: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    faults: dict[str, list[float]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.speed)


def measure_round(servers: dict[str, Server], measure, path: Path, runs: Runs, turn: int, label: str) -> None:
    """One run per server, a different server first each round; the first round also checks the stored bytes."""
    size = path.stat().st_size
    for name in rotated(tuple(servers), turn):
        server = servers[name]
        settle(size)
        cpu, faults = server.usage()
        seconds = measure(server, path, turn == 0)
        cpu_after, faults_after = server.usage()
        cpu, faults = cpu_after - cpu, faults_after - faults
        runs.speed.setdefault(name, []).append(size / seconds / MB)
        runs.cpu.setdefault(name, []).append(cpu / (size / 1024 ** 3))
        runs.faults.setdefault(name, []).append(faults / (size / 1024 ** 3))
        log(f"{label} round {turn + 1}: {name:15s} {size / seconds / MB:8.1f} MB/s ({seconds:.2f} s), "
            f"server CPU {cpu:.2f} s, {faults} minor faults")


class RssSampler:
    """Samples VmRSS of one process every few milliseconds; VmHWM is reset first where the kernel allows."""

    def __init__(self, pid: int, every: float = 0.01):
        self.pid = pid
        self.every = every
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.hwm_reset = False

    def status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise BenchError(f"/proc/{self.pid}/status has no {key}")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.status("VmRSS"))
            except (OSError, BenchError):
                return
            self._stop.wait(self.every)

    def __enter__(self):
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.hwm_reset = True
        except OSError:
            pass
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def peak(self) -> int:
        peak = max(self.samples)
        if self.hwm_reset:
            peak = max(peak, self.status("VmHWM"))
        return peak


@dataclass
class RssResult:
    how: str
    baseline: int
    peak: int
    seconds: float
    samples: int

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def measure_rss(server: Server, pid: int, how: str, upload) -> RssResult:
    settle()
    time.sleep(1.0)
    sampler = RssSampler(pid)
    baseline = sampler.status("VmRSS")
    with sampler:
        seconds = upload()
    time.sleep(0.2)
    result = RssResult(how, baseline, sampler.peak(), seconds, len(sampler.samples))
    log(f"RSS, {how}: baseline {result.baseline / MIB:.1f} MiB, peak {result.peak / MIB:.1f} MiB, "
        f"growth {result.growth / MIB:.1f} MiB ({result.seconds:.1f} s, {result.samples} samples)")
    return result


# -- profiling -----------------------------------------------------------------------------------------------

def profile_worker(server: Server, pid: int, path: Path, stamp: str, tmp: Path) -> list[str]:
    """py-spy record of our worker during one curl PATCH; a flame graph, raw stacks, and a text summary."""
    py_spy = ensure_py_spy()
    OUT.mkdir(exist_ok=True)
    lines = []
    for idle in (False, True):
        kind = "with-idle" if idle else "on-cpu"
        raw = OUT / f"profile-{stamp}-{kind}.txt"
        argv = [str(py_spy), "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--output", str(raw)]
        if idle:
            argv.append("--idle")
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(tmp / f"py-spy-{kind}.log", "wb"),
                               start_new_session=True)
        try:
            time.sleep(0.5)  # py-spy attaches
            seconds = curl_patch(server, path)
        finally:
            os.killpg(spy.pid, signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(spy.pid, signal.SIGKILL)
                spy.wait()
        lines.append(f"### py-spy, {kind}, one {path.stat().st_size // MIB} MiB curl PATCH "
                     f"({path.stat().st_size / seconds / MB:.0f} MB/s while profiled) — {raw.relative_to(ROOT)}")
        lines += summarize_profile(raw)
    return lines


def summarize_profile(raw: Path, top: int = 14) -> list[str]:
    """Self time by innermost frame and inclusive time of the frames of the upload path, from py-spy raw output.

    Shares are of the worker's main thread (gevent runs every greenlet there); with --idle, `Hub.run` is the
    event loop waiting for the socket."""
    if not raw.exists():
        return ["(py-spy wrote nothing)"]
    self_counts: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if frames[0].startswith("_WorkerGreenlet.run (gevent/threadpool.py") and "Queue.get" in stack:
            continue  # gevent's resolver thread waiting for work: not the worker's main thread
        n = int(count)
        total += n
        leaf = frames[-1]
        self_counts[leaf] = self_counts.get(leaf, 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return ["(no samples)"]
    out = ["", "| self % | innermost frame |", "| ---: | --- |"]
    for frame, n in sorted(self_counts.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"| {100 * n / total:.1f} | `{frame}` |")
    interesting = ("_receive", "write (gateway", "read (gateway", "read (gunicorn", "chunk (gunicorn",
                   "recv (gevent", "update", "getvalue", "handle_request", "Hub.run", "fire (gateway", "do_commit",
                   "lock (gateway", "_take (gateway")
    rows = [(frame, n) for frame, n in inclusive.items() if any(key in frame for key in interesting)]
    out += ["", "| incl. % | frame on the upload path |", "| ---: | --- |"]
    for frame, n in sorted(rows, key=lambda kv: -kv[1])[:top]:
        out.append(f"| {100 * n / total:.1f} | `{frame}` |")
    out.append("")
    return out


# -- report --------------------------------------------------------------------------------------------------

def versions(python_peer: Path) -> dict[str, str]:
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"

    def npm_version(name):
        try:
            return json.loads((PEERS / "node_modules" / name / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            return "?"

    return {
        "gunicorn": importlib.metadata.version("gunicorn"),
        "gevent": importlib.metadata.version("gevent"),
        "python": platform.python_version(),
        "node": cmd(["node", "--version"]),
        "@tus/server": npm_version("@tus/server"),
        "@tus/file-store": npm_version("@tus/file-store"),
        "tuspyserver": cmd([str(python_peer), "-c", "import importlib.metadata as m; print(m.version('tuspyserver'))"]),
        "uvicorn": cmd([str(python_peer), "-c", "import importlib.metadata as m; print(m.version('uvicorn'))"]),
        "tuspy": importlib.metadata.version("tuspy"),
        "curl": cmd(["curl", "--version"]).split("\n")[0].split(" ")[1] if shutil.which("curl") else "?",
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def git_revision() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def report(args, started: dt.datetime, vers: dict, curl: Runs, tuspy: Runs, rss: list[RssResult],
           profile: list[str], load: tuple[str, str]) -> str:
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    size, chunk, rss_size = args.size_mib, args.chunk_mib, args.rss_size_mib
    measurements = ((1, f"one {size} MiB PATCH (curl)", curl, TARGET_CURL_RATIO),
                    (2, f"tuspy, {size} MiB in {chunk} MiB chunks", tuspy, TARGET_TUSPY_RATIO))
    lines = [
        f"## Upload benchmark, {started.strftime('%Y-%m-%d %H:%M UTC')}, gateway at {git_revision()}",
        "",
        f"Loopback, {os.cpu_count()} cores, one disk for all; load average {load[0]} at the start, {load[1]} at "
        f"the end. Gateway as in the Procfile: gunicorn {vers['gunicorn']} (gevent {vers['gevent']} worker), "
        f"**WEB_CONCURRENCY={args.workers}**, Python {vers['python']}, SQLite, Redis `{args.redis_url}`"
        + (f", extra environment `{' '.join(args.gateway_env)}`" if args.gateway_env else "") + ". "
        f"@tus/server {vers['@tus/server']} + @tus/file-store {vers['@tus/file-store']} on node {vers['node']} "
        f"(one process). tuspyserver {vers['tuspyserver']} on uvicorn {vers['uvicorn']} (one process, uvloop + "
        f"httptools). Clients: curl {vers['curl']}, tuspy {vers['tuspy']}. MB = 10^6 bytes; each figure is the "
        f"median of {args.repeats} rounds; each round starts all three servers afresh and runs them in turn, "
        f"a different one first; dirty pages are flushed (sync) before each run"
        + ("" if args.no_prime else ", and the page allocator is primed (scratch data of the upload's size written "
           "and deleted just before: on this VM, memory left free for a few seconds goes back to the host and "
           "costs ~10x to write into again; `--no-prime` turns this off)") + ".",
        "",
        "| # | measurement | gateway (ours) | @tus/server | tuspyserver | ours / @tus/server | target | result |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for number, label, runs, target in measurements:
        if runs:
            speed = runs.speed
            ratio = med(speed[OURS]) / med(speed[NODE])
            lines.append(f"| {number} | {label}, MB/s | {med(speed[OURS]):.0f} | {med(speed[NODE]):.0f} | "
                         f"{med(speed[TUSPY]):.0f} | **{ratio:.2f}** | ≥ {target} | {verdict(ratio >= target)} |")
    if rss:
        for r in rss:
            lines.append(f"| 3 | RSS of our worker, {rss_size} MiB {r.how}: baseline / peak / growth | "
                         f"{r.baseline / MIB:.1f} / {r.peak / MIB:.1f} / **{r.growth / MIB:.1f} MiB** | | | | "
                         f"growth < {TARGET_RSS_GROWTH_MIB} MiB | {verdict(r.growth < TARGET_RSS_GROWTH_MIB * MIB)} |")
    if curl or tuspy:
        lines += ["", "Cost in the receiving process (our gunicorn worker, node, uvicorn; all its threads) per GiB "
                      "received, median: CPU seconds (user + system), and minor page faults (fresh memory touched):",
                  "", "| # | measurement | gateway (ours) | @tus/server | tuspyserver | @tus/server / ours |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for number, label, runs, _ in measurements:
            if runs:
                cpu, faults = runs.cpu, runs.faults
                lines.append(f"| {number} | {label}, CPU s/GiB | {med(cpu[OURS]):.2f} | {med(cpu[NODE]):.2f} | "
                             f"{med(cpu[TUSPY]):.2f} | {med(cpu[NODE]) / med(cpu[OURS]):.2f} |")
                lines.append(f"| {number} | {label}, minor faults/GiB | {med(faults[OURS]):.0f} | "
                             f"{med(faults[NODE]):.0f} | {med(faults[TUSPY]):.0f} | |")
        lines += ["", "Every run, MB/s (server CPU s/GiB), in the order run:", "",
                  "| measurement | gateway (ours) | @tus/server | tuspyserver |", "| --- | --- | --- | --- |"]
        for number, label, runs, _ in measurements:
            if runs:
                lines.append(f"| {number} | " + " | ".join(
                    ", ".join(f"{v:.0f} ({c:.2f})" for v, c in zip(runs.speed[name], runs.cpu[name]))
                    for name in SERVERS) + " |")
    if rss:
        lines += ["", "RSS runs (a fresh gateway, warmed up with small uploads; VmRSS sampled every 10 ms, VmHWM "
                      "reset before each): " + "; ".join(f"{r.how} at {rss_size * MIB / r.seconds / MB:.0f} MB/s, "
                                                         f"{r.samples} samples" for r in rss)]
    if profile:
        lines += [""] + profile
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512, help="file size for measurements 1 and 2")
    parser.add_argument("--chunk-mib", type=int, default=32, help="tuspy chunk size for measurement 2")
    parser.add_argument("--rss-size-mib", type=int, default=2048, help="file size for the RSS measurement 3")
    parser.add_argument("--repeats", type=int, default=3, help="runs per server (median reported)")
    parser.add_argument("--workers", type=int, default=1, help="WEB_CONCURRENCY of the gateway")
    parser.add_argument("--quick", action="store_true", help="64 MiB, 8 MiB chunks, 256 MiB for RSS, 1 repeat")
    parser.add_argument("--skip", action="append", default=[], choices=["curl", "tuspy", "rss"],
                        help="leave a measurement out (repeatable)")
    parser.add_argument("--profile", action="store_true",
                        help="also record py-spy profiles of our worker during a curl PATCH (installs py-spy "
                             "into bench/peers/.venv)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"))
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the gateway (repeatable), e.g. to try an allocator setting")
    parser.add_argument("--no-prime", action="store_true",
                        help="do not write and delete scratch data before each run (see settle() for why it does)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp directory (logs, uploads)")
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mib, args.chunk_mib, args.rss_size_mib, args.repeats = 64, 8, 256, 1
    return args


def preflight(args) -> None:
    for tool in ("curl", "node", "npm"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} is not on PATH")
    try:
        import tusclient  # noqa: F401
    except ImportError:
        raise BenchError("tuspy is missing: install the project's dev extra (.venv/bin/pip install -e '.[dev]')")
    if not (ROOT / ".venv" / "bin" / "gunicorn").exists():
        raise BenchError("the project's .venv has no gunicorn: run `make run` or `make test` once to set it up")
    parts = urlsplit(args.redis_url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=3).close()
    except OSError as error:
        raise BenchError(f"no Redis at {args.redis_url}: {error}")


def main(argv=None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="upload-bench-"))
    PRIME.update(on=not args.no_prime, dir=tmp)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        preflight(args)
        load_start = f"{os.getloadavg()[0]:.1f}"
        ensure_node_peer()
        python_peer = ensure_python_peer()
        vers = versions(python_peer)

        env = gateway_env(tmp, args)
        log("creating the gateway's schema (flask db upgrade)")
        run([str(ROOT / ".venv" / "bin" / "python"), "-m", "flask", "--app", "gateway.wsgi", "db", "upgrade"],
            env=env, what="flask db upgrade")

        size = args.size_mib * MIB
        main_file = make_file(tmp / f"data-{args.size_mib}MiB.bin", size)
        curl_runs = Runs()
        tuspy_runs = Runs()
        profile_lines: list[str] = []

        if "curl" not in args.skip or "tuspy" not in args.skip or args.profile:
            warm = make_file(tmp / "warm.bin", 4 * MIB)
            chunk = args.chunk_mib * MIB
            for turn in range(args.repeats):
                # Fresh server processes every round: on a VM the same work costs one process much more CPU
                # than another (where its buffers landed), so one process per server would bias the median.
                log(f"round {turn + 1}/{args.repeats}: starting the three servers")
                servers = {OURS: start_gateway(procs, tmp, env, f"round{turn + 1}"),
                           NODE: start_node(procs, tmp, f"round{turn + 1}"),
                           TUSPY: start_tuspy(procs, tmp, python_peer, f"round{turn + 1}")}
                # One small upload each, so start-up costs (imports, first connections) are not measured.
                for server in servers.values():
                    curl_patch(server, warm, verify=turn == 0)
                    tuspy_upload(server, warm, MIB, verify=turn == 0)
                if "curl" not in args.skip:
                    measure_round(servers, curl_patch, main_file, curl_runs, turn, "1 curl")
                if "tuspy" not in args.skip:
                    measure_round(servers, lambda s, p, v: tuspy_upload(s, p, chunk, v), main_file, tuspy_runs,
                                  turn, "2 tuspy")
                if args.profile and turn == args.repeats - 1:
                    log("profiling our worker with py-spy")
                    profile_lines = profile_worker(servers[OURS], servers[OURS].cpu_pid, main_file, stamp, tmp)
                for server in servers.values():
                    procs.stop(server.proc)

        rss: list[RssResult] = []
        if "rss" not in args.skip:
            main_file.unlink()
            big = make_file(tmp / f"data-{args.rss_size_mib}MiB.bin", args.rss_size_mib * MIB)
            log("starting a fresh gateway for the RSS measurement")
            gateway = start_gateway(procs, tmp, env, "rss")
            pid = worker_pid(gateway)
            warm = tmp / "warm.bin"
            if not warm.exists():
                make_file(warm, 4 * MIB)  # when the throughput measurements were skipped
            for _ in range(2):
                curl_patch(gateway, warm)
                tuspy_upload(gateway, warm, MIB)
            rss.append(measure_rss(gateway, pid, "one curl PATCH", lambda: curl_patch(gateway, big)))
            rss.append(measure_rss(gateway, pid, f"tuspy in {args.chunk_mib} MiB chunks",
                                   lambda: tuspy_upload(gateway, big, args.chunk_mib * MIB)))
            if not gateway.proc.alive() or worker_pid(gateway) != pid:
                raise BenchError("the gateway worker restarted during the RSS measurement:\n"
                                 + gateway.proc.log_tail())
            procs.stop(gateway.proc)

        load = (load_start, f"{os.getloadavg()[0]:.1f}")
        table = report(args, started, vers, curl_runs, tuspy_runs, rss, profile_lines, load)
        OUT.mkdir(exist_ok=True)
        out_file = OUT / f"upload-bench-{stamp}{'-quick' if args.quick else ''}.md"
        out_file.write_text(table)
        (OUT / "upload-bench-latest.md").write_text(table)
        print(table)
        log(f"written to {out_file.relative_to(ROOT)}")
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
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    sys.exit(main())
