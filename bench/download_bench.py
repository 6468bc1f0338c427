#!/usr/bin/env python3
"""Download fan-out: N concurrent downloaders of one file by one frozen refer key, against a loopback ceiling.

    .venv/bin/python bench/download_bench.py            # 512 MiB, 10 downloaders, 3 rounds
    .venv/bin/python bench/download_bench.py --quick    # 64 MiB, 10 downloaders, 1 round
    .venv/bin/python bench/download_bench.py --profile  # also py-spy the gunicorn workers during one round

Starts gunicorn as in the Procfile's `web` line (WEB_CONCURRENCY=2 by default, gunicorn.conf.py's default;
--workers to change), SQLite, the machine's Redis (db 7, flushed). No worker process: the download path does not
need one (the session starts in the web process on POST /cinema/; a 90 s rotation cannot happen first because the
first GET freezes the key at once). It uploads the file (POST + one curl PATCH), submits an analysis, reads the
refer key from the database, and freezes it with a first full GET whose bytes are checked against the file.

The ceiling is a plain Python server in a process of its own: one thread per connection, a minimal HTTP header,
then `socket.sendfile` (os.sendfile) of the gateway's stored copy of the same file. Both are read by the same
clients: N `curl -o /dev/null` in parallel. Aggregate MB/s = bytes received by all / wall time from starting the
first curl to the end of the last. Rounds alternate which server goes first; medians are reported. Target: the
gateway reaches >= 70% of the ceiling.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    MB, MIB, ROOT, BenchError, Stack, bench_main, header_lines, log, make_file, profile_pids, request, verdict,
    write_report,
)

TARGET_RATIO = 0.70


# -- the ceiling: a socket-to-socket sendfile server ---------------------------------------------------------

def ceiling_server(port: int, path: str) -> None:
    size = os.stat(path).st_size

    def serve(conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size)
            with open(path, "rb") as source:
                conn.sendfile(source)

    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


# -- the downloaders -----------------------------------------------------------------------------------------

def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def fan_out(url: str, clients: int, size: int, server_pids: list[int]) -> dict:
    """`clients` curls at once; aggregate MB/s, and CPU seconds of the server and of the curls."""
    argv = ["curl", "--silent", "--show-error", "--output", "/dev/null", "--max-time", "600",
            "--write-out", "%{http_code} %{size_download} %{time_total}", url]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = cpu_of(server_pids)
    started = time.perf_counter()
    running = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL) for _ in range(clients)]
    results = [p.communicate() + (p.returncode,) for p in running]
    wall = time.perf_counter() - started
    server_cpu = cpu_of(server_pids) - server_before
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (children_after.ru_utime - children_before.ru_utime) + (children_after.ru_stime
                                                                          - children_before.ru_stime)
    received = 0
    for out, err, code in results:
        fields = out.split()
        if code != 0 or len(fields) != 3 or fields[0] != "200" or int(fields[1]) != size:
            raise BenchError(f"a downloader of {url} failed: exit {code}, {out!r} {err.strip()}")
        received += int(fields[1])
    return {"mbps": received / wall / MB, "wall": wall, "server_cpu": server_cpu, "client_cpu": client_cpu,
            "bytes": received}


def verified_get(url: str, path: Path) -> dict:
    """One full GET read in 1 MiB blocks and hashed: the response must be the file, byte for byte."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        conn.request("GET", parts.path)
        answer = conn.getresponse()
        digest = hashlib.sha256()
        received = 0
        while block := answer.read(MIB):
            digest.update(block)
            received += len(block)
        headers = {k.lower(): v for k, v in answer.getheaders()}
        status = answer.status
    finally:
        conn.close()
    expected = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(8 * MIB):
            expected.update(block)
    if status != 200 or received != path.stat().st_size or digest.hexdigest() != expected.hexdigest():
        raise BenchError(f"GET {url}: {status}, {received} bytes, sha256 match: "
                         f"{digest.hexdigest() == expected.hexdigest()}")
    return headers


# -- main ----------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--clients", type=int, default=10, help="concurrent downloaders")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server (median reported)")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY of the gateway")
    parser.add_argument("--quick", action="store_true", help="64 MiB, 1 round")
    parser.add_argument("--profile", action="store_true", help="py-spy the gunicorn workers during an extra round")
    parser.add_argument("--gunicorn-config", help="use this file instead of gunicorn.conf.py (to try a variant)")
    parser.add_argument("--keep-tmp", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mib, args.rounds = 64, 1
    return args


def main(argv=None) -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_ceiling":
        ceiling_server(int(sys.argv[2]), sys.argv[3])
        return 0
    args = parse_args(argv)

    def body(procs, tmp, started, stamp):
        stack = Stack(tmp, procs)
        stack.prepare()
        web = stack.start_web(args.workers, config=args.gunicorn_config)
        source = make_file(tmp / f"script-{args.size_mib}MiB.pdf", args.size_mib * MIB)
        size = source.stat().st_size
        log("uploading it (POST + one curl PATCH)")
        file_id = stack.upload_big(source)
        stored = stack.data_path(file_id)
        if not stored.is_file() or stored.stat().st_size != size:
            raise BenchError(f"the stored copy of {file_id} is not at {stored}")
        analysis_id = stack.submit(file_id)
        key = stack.current_key(analysis_id)
        url = f"{web.url}/download/{key}/"
        log("first GET (freezes the key), checked byte for byte")
        headers = verified_get(url, source)
        status, _, _ = request("HEAD", url)
        if status != 200:
            raise BenchError(f"the key does not stay valid after the first GET: HEAD answered {status}")
        log(f"ETag {headers.get('etag')}, Content-Length {headers.get('content-length')}")

        from common import free_port
        port = free_port()
        ceiling = procs.start("ceiling", [sys.executable, str(Path(__file__).resolve()), "_ceiling", str(port),
                                          str(stored)], cwd=ROOT, env=dict(os.environ),
                              log_path=tmp / "ceiling.log")
        ceiling_url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or not ceiling.alive():
                    raise BenchError(f"the ceiling server did not start:\n{ceiling.log_tail()}")
                time.sleep(0.1)

        servers = {"ceiling": (ceiling_url, [ceiling.pid]), "gateway": (url, web.worker_pids())}
        # Warm-up: each once with all clients (page cache, connections, imports).
        for name, (target, pids) in servers.items():
            fan_out(target, args.clients, size, pids)
        runs = {name: [] for name in servers}
        singles = {name: [] for name in servers}
        for turn in range(args.rounds):
            order = list(servers) if turn % 2 == 0 else list(servers)[::-1]
            for name in order:
                target, pids = servers[name]
                result = fan_out(target, args.clients, size, pids)
                runs[name].append(result)
                log(f"round {turn + 1}/{args.rounds}: {name:8s} {args.clients} x {args.size_mib} MiB: "
                    f"{result['mbps']:8.0f} MB/s ({result['wall']:.2f} s), server CPU {result['server_cpu']:.2f} s, "
                    f"curl CPU {result['client_cpu']:.2f} s")
            for name in order:
                target, pids = servers[name]
                result = fan_out(target, 1, size, pids)
                singles[name].append(result)
                log(f"round {turn + 1}/{args.rounds}: {name:8s} 1 x {args.size_mib} MiB: {result['mbps']:8.0f} MB/s")
        profile_lines = []
        if args.profile:
            log("profiling the gunicorn workers during one more gateway round")
            holder = {}
            thread = threading.Thread(target=lambda: holder.update(
                lines=profile_pids({f"gunicorn-{i}": pid for i, pid in enumerate(web.worker_pids())},
                                   6, stamp, tmp)))
            thread.start()
            time.sleep(1.0)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                fan_out(url, args.clients, size, web.worker_pids())
            thread.join()
            profile_lines = holder.get("lines", [])

        med = lambda rows, key: statistics.median(r[key] for r in rows)
        ceiling_mbps, gateway_mbps = med(runs["ceiling"], "mbps"), med(runs["gateway"], "mbps")
        ratio = gateway_mbps / ceiling_mbps
        gib = size * args.clients / 1024 ** 3
        lines = header_lines("Download fan-out benchmark", started,
                             f"Gateway: the Procfile's web line, **WEB_CONCURRENCY={args.workers}**, SQLite; one "
                             f"frozen refer key. Ceiling: a Python thread-per-connection server doing "
                             f"os.sendfile of the same stored file. Clients: {args.clients} × `curl -o /dev/null` "
                             f"in parallel (the same for both). MB = 10^6 bytes; median of {args.rounds} rounds, "
                             f"order alternating; the file is in the page cache.")
        lines += [
            "| measurement | gateway | ceiling | gateway / ceiling | target | result |",
            "| --- | ---: | ---: | ---: | --- | --- |",
            f"| {args.clients} concurrent downloads of {args.size_mib} MiB, aggregate MB/s | {gateway_mbps:.0f} | "
            f"{ceiling_mbps:.0f} | **{ratio:.2f}** | ≥ {TARGET_RATIO:.2f} | {verdict(ratio >= TARGET_RATIO)} |",
            f"| 1 download of {args.size_mib} MiB, MB/s (for reference) | {med(singles['gateway'], 'mbps'):.0f} | "
            f"{med(singles['ceiling'], 'mbps'):.0f} | "
            f"{med(singles['gateway'], 'mbps') / med(singles['ceiling'], 'mbps'):.2f} | | |",
            f"| server CPU s per GiB sent ({args.clients} downloads) | "
            f"{med(runs['gateway'], 'server_cpu') / gib:.2f} | {med(runs['ceiling'], 'server_cpu') / gib:.2f} | | | |",
            f"| curl CPU s per GiB received ({args.clients} downloads) | "
            f"{med(runs['gateway'], 'client_cpu') / gib:.2f} | {med(runs['ceiling'], 'client_cpu') / gib:.2f} | | | |",
            "",
            "Every round, aggregate MB/s: gateway " + ", ".join(f"{r['mbps']:.0f}" for r in runs["gateway"])
            + "; ceiling " + ", ".join(f"{r['mbps']:.0f}" for r in runs["ceiling"]) + ".",
        ]
        if profile_lines:
            lines += [""] + profile_lines
        write_report("download-bench", "\n".join(lines) + "\n", stamp, args.quick)

    return bench_main(body, args, "download-bench")


if __name__ == "__main__":
    sys.exit(main())
