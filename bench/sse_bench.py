#!/usr/bin/env python3
"""SSE fan-out: 1,000 event streams open on ONE web process, events published, delivery latency; and an upload
running at the same time keeps its speed.

    .venv/bin/python bench/sse_bench.py            # 1,000 streams, 100 events at 10/s, 256 MiB uploads
    .venv/bin/python bench/sse_bench.py --quick    # 200 streams, 20 events, 64 MiB uploads
    .venv/bin/python bench/sse_bench.py --profile  # also py-spy the gunicorn worker while events flow

Starts gunicorn as in the Procfile's `web` line with WEB_CONCURRENCY=1, SQLite, the machine's Redis (db 7,
flushed); no worker process (nothing here needs one). Two phases, each with a fresh client process:
  * "one file": every stream watches the same file; each event is one XADD to `events:file:<id>`;
  * "spread": the streams watch 100 files (10 each); each event round is one XADD to each of the 100 files
    (pipelined), so every stream still gets every round and the deliveries are as many as in phase one.
Events are XADDed by this script straight into the file's Redis Stream with fields `type` = bench and `data` =
{"seq", "sent": time.time()}; latency of a delivery = the time the client process read it from its socket - sent.

The clients: one asyncio process (asyncio.Protocol, HTTP/1.1 with chunked decoding, EventSource-like requests);
it stamps each read with time.time() on arrival, so its own event-loop lag is part of the measured latency (an
upper bound). The upload: one curl PATCH of the whole file (POST, PATCH, HEAD check, DELETE; MB/s
from the PATCH as timed by curl; the other steps are timed too). Solo runs happen with no stream open (before, between and after the phases); loaded runs
are back to back while the phase's streams are open and events flow (publishing goes on until they end).
Targets: p99 latency < 250 ms; loaded upload >= 80% of the solo median.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    MB, MIB, ROOT, BenchError, Stack, bench_main, header_lines, log, make_file, pct, profile_pids, raise_nofile,
    verdict, write_report,
)

TARGET_P99_MS = 250
TARGET_UPLOAD_RATIO = 0.80


# -- the client process --------------------------------------------------------------------------------------

class Stream(asyncio.Protocol):
    """One EventSource-like stream. When the server closes it, it reconnects after the stream's `retry` (2 s
    from the gateway) with Last-Event-ID, as a browser's EventSource does."""

    def __init__(self, index: int, state):
        self.index = index
        self.state = state
        self.head = b""
        self.chunked = None
        self.raw = b""
        self.text = b""
        self.transport = None
        self.got_head = False

    def connection_made(self, transport):
        self.transport = transport
        last = self.state["last_id"].get(self.index)
        extra = f"Last-Event-ID: {last}\r\n" if last else ""
        transport.write((f"GET /events/{self.state['file_of'](self.index)}/ HTTP/1.1\r\n"
                         f"Host: 127.0.0.1:{self.state['port']}\r\nAccept: text/event-stream\r\n"
                         f"Cache-Control: no-cache\r\nUser-Agent: sse-bench\r\n{extra}\r\n").encode())

    def data_received(self, data: bytes):
        now = time.time()
        if self.chunked is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, data = self.head.partition(b"\r\n\r\n")
            status = head.split(b"\r\n", 1)[0]
            if b" 200 " not in status + b" ":
                self.state["errors"].append(f"stream {self.index}: {status.decode(errors='replace')}")
                self.transport.close()
                return
            self.chunked = b"transfer-encoding: chunked" in head.lower()
        if self.chunked:
            self.raw += data
            pos = 0
            pieces = []
            while True:
                nl = self.raw.find(b"\r\n", pos)
                if nl < 0:
                    break
                size = int(self.raw[pos:nl].split(b";")[0] or b"0", 16)
                end = nl + 2 + size
                if len(self.raw) < end + 2:
                    break
                pieces.append(self.raw[nl + 2:end])
                pos = end + 2
            self.raw = self.raw[pos:]
            data = b"".join(pieces)
        self.text += data
        if b"\n\n" not in self.text:
            return
        *blocks, self.text = self.text.split(b"\n\n")
        state = self.state
        for block in blocks:
            if block.startswith(b"id: "):
                state["last_id"][self.index] = block[4:block.index(b"\n")].decode()
            if b"event: bench\n" in block:
                payload = json.loads(block[block.index(b"data: ") + 6:])
                state["lat"].append((payload["seq"], round(now - payload["sent"], 6)))
                state["counts"][self.index] += 1
            elif b"event: snapshot\n" in block and self.index not in state["ready"]:
                state["ready"].add(self.index)
                if len(state["ready"]) == state["streams"]:
                    print(f"READY {state['streams']}", flush=True)

    def connection_lost(self, exc):
        state = self.state
        if state["stopping"]:
            return
        state["errors"].append(f"stream {self.index} closed by the server"
                               + ("" if self.index in state["ready"] else " before its snapshot")
                               + (f": {exc!r}" if exc else ""))
        state["reconnect"](self.index, 2.0)


async def clients(port: int, files: list[str], streams: int, out: Path) -> None:
    raise_nofile()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGUSR1, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    current: dict[int, Stream] = {}
    tasks = set()

    def reconnect(index: int, delay: float) -> None:
        state["reconnects"] += 1
        task = loop.create_task(open_one(index, delay))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    state = {"lat": [], "errors": [], "ready": set(), "streams": streams, "stopping": False, "port": port,
             "file_of": lambda i: files[i % len(files)], "last_id": {}, "counts": [0] * streams,
             "reconnect": reconnect, "reconnects": 0}
    gate = asyncio.Semaphore(50)
    started = time.time()

    async def open_one(index: int, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        async with gate:
            while not state["stopping"]:
                try:
                    _, protocol = await loop.create_connection(lambda: Stream(index, state), "127.0.0.1", port)
                    current[index] = protocol
                    return
                except OSError as error:
                    state["errors"].append(f"stream {index}: {error!r}")
                    await asyncio.sleep(2.0)

    await asyncio.gather(*(open_one(i) for i in range(streams)))
    print(f"OPENED {len(current)} in {time.time() - started:.2f} s", flush=True)
    # Loop lag, sampled every 50 ms: how late this process itself is to look at its sockets.
    lags = []

    async def lag_probe():
        while True:
            before = loop.time()
            await asyncio.sleep(0.05)
            lags.append(loop.time() - before - 0.05)

    probe = asyncio.create_task(lag_probe())
    await stop.wait()
    probe.cancel()
    state["stopping"] = True
    for task in list(tasks):
        task.cancel()
    for protocol in current.values():
        if protocol.transport:
            protocol.transport.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.write_text(json.dumps({
        "lat": state["lat"], "counts": state["counts"], "ready": len(state["ready"]),
        "errors": state["errors"][:20], "error_count": len(state["errors"]), "reconnects": state["reconnects"],
        "cpu": usage.ru_utime + usage.ru_stime, "lag_p99": pct(lags, 99), "lag_max": max(lags, default=0)}))
    print("DONE", flush=True)


# -- the driver ----------------------------------------------------------------------------------------------

class Phase:
    def __init__(self, name: str, files: list[str]):
        self.name = name
        self.files = files
        self.result: dict = {}
        self.sent: dict[int, float] = {}
        self.uploads: list[tuple[float, float, float]] = []  # (start, end, MB/s)
        self.web_cpu = 0.0
        self.publish_seconds = 0.0
        self.open_seconds = 0.0
        self.profile: list[str] = []
        self.server_errors: dict[str, int] = {}
        self.steps: list[dict] = []
        self.released = float("nan")
        self.slow_requests: list[tuple[int, str]] = []


def wait_for_line(proc, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.log_path.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line
        if not proc.alive():
            raise BenchError(f"the client process exited:\n{proc.log_tail()}")
        time.sleep(0.1)
    raise BenchError(f"the client process did not say {prefix} within {timeout:.0f} s:\n{proc.log_tail()}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_phase(args, stack: Stack, procs, tmp: Path, phase: Phase, upload, stamp: str) -> None:
    import redis as redis_lib

    log(f"phase {phase.name}: opening {args.streams} streams over {len(phase.files)} file(s)")
    web_log_at = stack.web.proc.log_path.stat().st_size
    access_log = Path(stack.env["ACCESS_LOG"])
    access_at = access_log.stat().st_size if access_log.exists() else 0
    out = tmp / f"clients-{phase.name}.json"
    client = procs.start(f"clients ({phase.name})",
                         [sys.executable, str(Path(__file__).resolve()), "_clients", str(stack.port),
                          ",".join(phase.files), str(args.streams), str(out)],
                         cwd=ROOT, env=dict(os.environ), log_path=tmp / f"clients-{phase.name}.log")
    opened_at = time.monotonic()
    wait_for_line(client, "READY", 180)
    phase.open_seconds = time.monotonic() - opened_at
    log(f"phase {phase.name}: all {args.streams} streams got their snapshot in {phase.open_seconds:.1f} s")
    worker_pid = stack.web.worker_pids()[0]
    time.sleep(1.0)

    uploading = threading.Event()
    upload_error: list[BaseException] = []

    def uploads():
        try:
            time.sleep(1.0)  # events are flowing first
            for _ in range(args.loaded):
                start = time.time()
                mbps, step = upload()
                phase.uploads.append((start, time.time(), mbps))
                phase.steps.append(step)
                log(f"phase {phase.name}: upload with the streams open: {mbps:.0f} MB/s")
        except BaseException as error:  # noqa: BLE001 (reported by the driver)
            upload_error.append(error)
        finally:
            uploading.clear()

    redis = redis_lib.Redis.from_url(stack.redis_url)
    keys = [f"events:file:{file_id}" for file_id in phase.files]
    uploader = threading.Thread(target=uploads, name="uploads", daemon=True)
    profiler = None
    if args.profile:
        holder = {}
        seconds = max(5.0, args.events / args.rate)
        profiler = threading.Thread(target=lambda: holder.update(lines=profile_pids(
            {"gunicorn-" + phase.name.replace(" ", "-"): worker_pid}, seconds, f"{stamp}-sse", tmp)), daemon=True)
        profiler.start()
    cpu_before = cpu_seconds(worker_pid)
    uploading.set()
    uploader.start()
    interval = 1.0 / args.rate
    t0 = time.monotonic()
    seq = 0
    try:
        while seq < args.events or uploading.is_set():
            delay = t0 + seq * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = time.time()
            data = {"type": "bench", "data": json.dumps({"seq": seq, "sent": sent})}
            if len(keys) == 1:
                redis.xadd(keys[0], data, maxlen=2000, approximate=True)
            else:
                pipe = redis.pipeline(transaction=False)
                for key in keys:
                    pipe.xadd(key, data, maxlen=2000, approximate=True)
                pipe.execute()
            phase.sent[seq] = sent
            seq += 1
            if seq > args.events * 20:
                raise BenchError("the uploads under load did not end")
        phase.publish_seconds = time.monotonic() - t0
        uploader.join()
        time.sleep(2.0)  # stragglers
        phase.web_cpu = cpu_seconds(worker_pid) - cpu_before
    finally:
        redis.close()
        if client.alive():
            os.kill(client.pid, signal.SIGUSR1)
        wait_for_line(client, "DONE", 60)
        procs.stop(client)
        if profiler:
            profiler.join()
            phase.profile = holder.get("lines", [])
    if upload_error:
        raise BenchError(f"the upload under load failed: {upload_error[0]}")
    phase.result = json.loads(out.read_text())
    with open(stack.web.proc.log_path, "rb") as handle:
        handle.seek(web_log_at)
        for line in handle.read().decode(errors="replace").splitlines():
            found = re.match(r"^([\w.]+(?:Error|Exception)): ", line)
            if found:
                phase.server_errors[found.group(1)] = phase.server_errors.get(found.group(1), 0) + 1
    if access_log.exists():
        with open(access_log, "rb") as handle:
            handle.seek(access_at)
            for line in handle.read().decode(errors="replace").splitlines():
                found = re.search(r'"(\w+) (\S+) HTTP/[\d.]+" (\d+) \S+ (\d+)ms', line)
                if found and not found.group(2).startswith("/events/"):
                    path = re.sub(r"/files/[^/]+", "/files/<id>", found.group(2))
                    phase.slow_requests.append((int(found.group(4)), f"{found.group(1)} {path} {found.group(3)}"))
        phase.slow_requests.sort(reverse=True)
    log(f"phase {phase.name}: {seq} events published in {phase.publish_seconds:.1f} s; "
        f"{len(phase.result['lat'])} deliveries received; worker CPU {phase.web_cpu:.1f} s")


def wait_released(stack: Stack, timeout: float = 60.0) -> float:
    """Seconds until the worker's open-streams gauge (the EventHub's, in Redis, 30 s TTL) says 0 or has expired,
    after the clients closed their connections: the next phase must not start while the old streams still hold
    greenlets and connection slots (a stream notices its client left only when a heartbeat write fails)."""
    import redis as redis_lib

    client = redis_lib.Redis.from_url(stack.redis_url)
    key = f"metrics:streams:{stack.web.worker_pids()[0]}"
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            value = client.get(key)
            if value is None or int(value) == 0:
                if value is None:
                    log("the open-streams gauge expired instead of reaching 0 (its last update was lost)")
                return time.monotonic() - started
            time.sleep(0.2)
    finally:
        client.close()
    return float("nan")


def analyse(phase: Phase, streams: int) -> dict:
    lat = phase.result["lat"]
    ms = [1000 * value for _, value in lat]
    during, outside = [], []
    by_event: dict[int, list[float]] = {}
    for seq, value in lat:
        by_event.setdefault(seq, []).append(1000 * value)
        sent = phase.sent.get(seq)
        if sent is not None and any(start <= sent <= end + 0.5 for start, end, _ in phase.uploads):
            during.append(1000 * value)
        else:
            outside.append(1000 * value)
    first = [min(v) for v in by_event.values()]
    span = [max(v) - min(v) for v in by_event.values()]
    expected = streams * len(phase.sent)
    return {"p50": pct(ms, 50), "p99": pct(ms, 99), "max": max(ms, default=float("nan")),
            "p99_during": pct(during, 99), "p99_outside": pct(outside, 99), "during": len(during),
            "received": len(lat), "expected": expected, "events": len(phase.sent),
            "first_p50": pct(first, 50), "first_p99": pct(first, 99), "span_p50": pct(span, 50),
            "span_p99": pct(span, 99)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100, help="events (rounds) published per phase, at least")
    parser.add_argument("--rate", type=float, default=10.0, help="events (rounds) per second")
    parser.add_argument("--spread-files", type=int, default=100, help="files of the spread phase (0: skip it)")
    parser.add_argument("--upload-mib", type=int, default=256)
    parser.add_argument("--loaded", type=int, default=5, help="uploads under load per phase")
    parser.add_argument("--quick", action="store_true", help="200 streams, 20 events, 20 files, 64 MiB")
    parser.add_argument("--profile", action="store_true", help="py-spy the gunicorn worker while events flow")
    parser.add_argument("--solo", type=int, default=3, help="solo uploads before the phases (2 after each)")
    parser.add_argument("--gunicorn-config", help="use this file instead of gunicorn.conf.py (to try a variant)")
    parser.add_argument("--keep-tmp", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.events, args.spread_files, args.upload_mib, args.loaded, args.solo = 200, 20, 20, 64, 1, 1
    return args


def main(argv=None) -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_clients":
        _, _, port, files, streams, out = sys.argv
        asyncio.run(clients(int(port), files.split(","), int(streams), Path(out)))
        return 0
    args = parse_args(argv)

    def body(procs, tmp, started, stamp):
        import subprocess

        from upload_bench import OURS, Server, curl_patch

        limit = raise_nofile()
        if limit < args.streams + 200:
            raise BenchError(f"open files limit {limit} is too low for {args.streams} streams")
        access_log = tmp / "access.log"
        stack = Stack(tmp, procs, ACCESS_LOG=access_log)
        stack.prepare()
        web = stack.start_web(1, config=args.gunicorn_config)
        log("uploading the watched files")
        main_file = stack.upload_small(b"INT. KITCHEN - NIGHT\n" * 50, "one.txt")
        spread = [stack.upload_small(b"EXT. ROAD - DAY\n" * 20, f"spread-{i}.txt")
                  for i in range(args.spread_files)]
        big = make_file(tmp / f"upload-{args.upload_mib}MiB.bin", args.upload_mib * MIB)
        target = Server(OURS, web.proc, web.url + "/files/", stack.media_root)
        def upload() -> float:
            """POST, one curl PATCH (timed by curl), HEAD, DELETE; each step's seconds kept in `steps`."""
            size = big.stat().st_size
            t0 = time.perf_counter()
            url = target.create(size)
            t1 = time.perf_counter()
            result = subprocess.run(
                ["curl", "--silent", "--show-error", "--output", "/dev/null", "--max-time", "600", "-X", "PATCH",
                 "-T", str(big), "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
                 "-H", "Content-Type: application/offset+octet-stream", "-H", "Expect:",
                 "--write-out", "%{http_code} %{time_total}", url], capture_output=True, text=True,
                stdin=subprocess.DEVNULL)
            t2 = time.perf_counter()
            fields = result.stdout.split()
            if result.returncode != 0 or not fields or fields[0] != "204":
                raise BenchError(f"PATCH failed ({result.returncode}): {result.stdout!r} {result.stderr.strip()}")
            if target.offset(url) != size:
                raise BenchError("HEAD after the PATCH does not report the whole file")
            t3 = time.perf_counter()
            target.delete(url)
            t4 = time.perf_counter()
            return size / float(fields[1]) / MB, {"post": t1 - t0, "patch": float(fields[1]), "head": t3 - t2,
                                                 "delete": t4 - t3}

        warm = make_file(tmp / "warm.bin", 4 * MIB)
        curl_patch(target, warm)
        solo: list[float] = []
        solo_steps: list[dict] = []

        def solo_runs(count: int, when: str) -> None:
            for _ in range(count):
                mbps, step = upload()
                solo.append(mbps)
                solo_steps.append(step)
                log(f"solo upload ({when}): {solo[-1]:.0f} MB/s")

        solo_runs(args.solo, "before")
        phases = [Phase("one file", [main_file])]
        if args.spread_files:
            phases.append(Phase(f"{args.spread_files} files", spread))
        for number, phase in enumerate(phases):
            run_phase(args, stack, procs, tmp, phase, upload, stamp)
            phase.released = wait_released(stack)
            log(f"phase {phase.name}: the server let go of its streams {phase.released:.1f} s after the clients left")
            solo_runs(1 if args.quick else 2, "after " + phase.name)

        solo_median = statistics.median(solo)
        lines = header_lines("SSE fan-out benchmark", started,
                             f"Gateway: the Procfile's web line, **WEB_CONCURRENCY=1** (all streams and the upload "
                             f"on one gevent worker), SQLite. {args.streams} streams from one asyncio client process "
                             f"(its loop lag counts in the latency); events XADDed by the bench at {args.rate:g}/s; "
                             f"upload = one curl PATCH of {args.upload_mib} MiB. MB = 10^6 bytes."
                             + (f" **gunicorn config: {args.gunicorn_config}**." if args.gunicorn_config else ""))
        lines += ["| phase | streams | events (rounds) | deliveries received / expected | p50 ms | p99 ms | max ms "
                  "| p99 ms: events sent while uploading / not | target p99 | result |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        stats = [analyse(phase, args.streams) for phase in phases]
        for phase, s in zip(phases, stats):
            ok = s["p99"] < TARGET_P99_MS and s["received"] == s["expected"]
            lines.append(f"| {phase.name} | {args.streams} | {s['events']} | {s['received']} / {s['expected']} | "
                         f"{s['p50']:.1f} | **{s['p99']:.1f}** | {s['max']:.1f} | {s['p99_during']:.0f} / {s['p99_outside']:.0f} | "
                         f"< {TARGET_P99_MS} ms, none lost | {verdict(ok)} |")
        lines += ["", "Per event: the first stream to get it after p50 / p99 ms (the hub's wake-up), and the spread from "
                      "the first stream to the last, p50 / p99 ms (the fan-out itself): " + "; ".join(
                          f"{phase.name}: {s['first_p50']:.0f} / {s['first_p99']:.0f}, spread {s['span_p50']:.0f} / "
                          f"{s['span_p99']:.0f}" for phase, s in zip(phases, stats)) + "."]
        lines += ["", "| upload of " + f"{args.upload_mib} MiB | MB/s (median) | runs | loaded / solo | target | result |",
                  "| --- | ---: | --- | ---: | --- | --- |",
                  f"| solo (no stream open) | {solo_median:.0f} | {', '.join(f'{v:.0f}' for v in solo)} | | | |"]
        for phase in phases:
            loaded = [mbps for _, _, mbps in phase.uploads]
            ratio = statistics.median(loaded) / solo_median
            lines.append(f"| with {args.streams} streams open, events flowing ({phase.name}) | "
                         f"{statistics.median(loaded):.0f} | {', '.join(f'{v:.0f}' for v in loaded)} | "
                         f"**{ratio:.2f}** | ≥ {TARGET_UPLOAD_RATIO:.2f} | {verdict(ratio >= TARGET_UPLOAD_RATIO)} |")
        lines += ["", "| phase | all streams had their snapshot after | publishing lasted | gunicorn worker CPU "
                      "while publishing | client CPU (whole phase) | client loop lag p99 / max | streams dropped by "
                      "the server (reconnected after 2 s) | exceptions in the gunicorn log | server let go of the streams "
                      "after the clients left |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |"]
        for phase in phases:
            r = phase.result
            errors = ", ".join(f"{count} × `{name}`" for name, count in sorted(phase.server_errors.items(),
                                                                           key=lambda kv: -kv[1])) or "none"
            lines.append(f"| {phase.name} | {phase.open_seconds:.1f} s | {phase.publish_seconds:.1f} s | "
                         f"{phase.web_cpu:.1f} s | {r['cpu']:.1f} s | {1000 * r['lag_p99']:.0f} / "
                         f"{1000 * r['lag_max']:.0f} ms | {r['reconnects']} ({r['error_count']} client errors"
                         + (f"; first: {r['errors'][0]}" if r["errors"] else "") + f") | {errors} | {phase.released:.1f} s |")
        def step_text(rows: list[dict]) -> str:
            return ", ".join(f"{name} {max(r[name] for r in rows):.2f}" for name in ("post", "patch", "head",
                                                                                   "delete")) if rows else "-"

        lines += ["", "Upload steps, slowest of the runs, s: solo: " + step_text(solo_steps) + "; " + "; ".join(
            f"{phase.name}: {step_text(phase.steps)}" for phase in phases) + "."]
        lines += ["", "Slowest non-stream requests in the access log during each phase (ms): " + "; ".join(
            f"{phase.name}: " + (", ".join(f"{what} {ms}" for ms, what in phase.slow_requests[:5]) or "-")
            for phase in phases) + "."]
        for phase in phases:
            if phase.profile:
                lines += [""] + phase.profile
        write_report("sse-bench", "\n".join(lines) + "\n", stamp, args.quick)

    return bench_main(body, args, "sse-bench")


if __name__ == "__main__":
    sys.exit(main())
