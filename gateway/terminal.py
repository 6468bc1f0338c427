"""`python -m gateway upload FILE --target 12+ [--title T] [--watch]`: the terminal client.

A resumable tus upload with a progress bar, then the statuses as they arrive, then the summary. Its state (the
upload's URL and the analysis it asked for) is kept in a small JSON file under the user's cache directory,
keyed by the file's path, size and modification time, so that a Ctrl-C or a dropped link resumes where it
stopped, and the analysis is not asked for twice.
"""
from __future__ import annotations

import argparse
import base64
import json
import mimetypes
import os
import sys
import time
from pathlib import Path

import requests

from .models import AGES

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = 8 * 1024 * 1024
RETRY_DELAYS = (1, 2, 4, 8, 15, 30, 30, 60)


def state_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cinema-gateway" / "uploads.json"


class ResumeState:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.entries = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            self.entries = {}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(".tmp")
        temp.write_text(json.dumps(self.entries, indent=1))
        os.replace(temp, self.path)

    @staticmethod
    def fingerprint(server: str, file: Path) -> str:
        stat = file.stat()
        return f"{server}|{file.resolve()}|{stat.st_size}|{int(stat.st_mtime)}"


class Progress:
    def __init__(self, total: int, out=sys.stderr):
        self.total, self.out = total, out
        self.samples: list[tuple[float, int]] = []

    def show(self, done: int) -> None:
        now = time.monotonic()
        self.samples = [s for s in self.samples if now - s[0] < 5] + [(now, done)]
        elapsed = now - self.samples[0][0]
        rate = (done - self.samples[0][1]) / elapsed if elapsed > 0 else 0
        share = done / self.total if self.total else 1
        bar = "#" * int(share * 30)
        eta = f"{int((self.total - done) / rate)} s left" if rate > 0 else ""
        self.out.write(f"\r[{bar:<30}] {share * 100:5.1f}%  {rate / 1048576:6.2f} MiB/s  {eta:<14}")
        self.out.flush()

    def finish(self) -> None:
        self.out.write("\n")


def _with_retries(action, what: str):
    for delay in RETRY_DELAYS + (None,):
        try:
            return action()
        except requests.RequestException as error:
            if delay is None:
                raise SystemExit(f"{what} failed: {error}")
            sys.stderr.write(f"\n{what}: {error.__class__.__name__}; retrying in {delay} s\n")
            time.sleep(delay)


def create_upload(http: requests.Session, server: str, file: Path) -> str:
    filetype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                    (("filename", file.name), ("filetype", filetype)))
    answer = _with_retries(lambda: http.post(f"{server}/files/", headers={
        **TUS, "Upload-Length": str(file.stat().st_size), "Upload-Metadata": meta}, timeout=30), "creating the upload")
    if answer.status_code != 201:
        raise SystemExit(f"the server refused the upload: {answer.status_code} {answer.text.strip()}")
    return answer.headers["Location"]


def server_offset(http: requests.Session, url: str) -> int | None:
    answer = _with_retries(lambda: http.head(url, headers=TUS, timeout=30), "asking for the offset")
    if answer.status_code in (404, 410):
        return None
    if answer.status_code != 200:
        raise SystemExit(f"HEAD {url} answered {answer.status_code}")
    return int(answer.headers["Upload-Offset"])


def send(http: requests.Session, url: str, file: Path, offset: int, progress: Progress,
         chunk_size: int = CHUNK) -> None:
    size = file.stat().st_size
    with open(file, "rb") as source:
        while offset < size:
            source.seek(offset)
            chunk = source.read(chunk_size)
            try:
                answer = http.patch(url, data=chunk, timeout=120, headers={
                    **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
            except requests.RequestException as error:
                sys.stderr.write(f"\nconnection lost ({error.__class__.__name__}); resuming\n")
                time.sleep(2)
                offset = server_offset(http, url) or 0
                continue
            if answer.status_code == 409:
                offset = int(answer.headers["Upload-Offset"])
                continue
            if answer.status_code != 204:
                raise SystemExit(f"\nthe server refused a chunk: {answer.status_code} {answer.text.strip()}")
            offset = int(answer.headers["Upload-Offset"])
            progress.show(offset)
    progress.show(size)
    progress.finish()


def submit(http: requests.Session, server: str, file_id: str, target: str, title: str | None) -> int:
    token = http.get(f"{server}/csrftoken/", timeout=30).json()["csrfToken"]
    answer = http.post(f"{server}/cinema/", headers={"X-CSRFToken": token}, timeout=30,
                       json={"file_id": file_id, "target_audience": target, "title": title or ""})
    if answer.status_code != 201:
        raise SystemExit(f"the analysis was refused: {answer.status_code} {answer.json().get('error')}")
    return answer.json()["id"]


def watch(http: requests.Session, server: str, file_id: str, analysis_id: int, out=sys.stdout) -> int:
    """Print statuses until the analysis is done or failed; the summary at the end. Returns the exit code."""
    last_id = None
    while True:
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
        try:
            with http.get(f"{server}/events/{file_id}/", headers=headers, stream=True, timeout=60) as stream:
                event = {}
                for line in stream.iter_lines(decode_unicode=True):
                    if line:
                        name, _, value = line.partition(":")
                        event[name] = value.lstrip()
                        continue
                    if event.get("id"):
                        last_id = event["id"]
                    status = _status_of(event, analysis_id)
                    event = {}
                    if status is None:
                        continue
                    out.write(f"status: {status['status']}{' (' + status['reason'] + ')' if status.get('reason') else ''}\n")
                    out.flush()
                    if status["status"] == "error":
                        return 1
                    if status["status"] == "db_ready":
                        summary(http, server, file_id, analysis_id, out)
                        return 0
        except requests.RequestException:
            time.sleep(2)


def _status_of(event: dict, analysis_id: int) -> dict | None:
    try:
        data = json.loads(event.get("data", "null"))
    except ValueError:
        return None
    if event.get("event") == "status" and data.get("analysis_id") == analysis_id:
        return data
    if event.get("event") == "snapshot":
        for analysis in data.get("analyses", []):
            if analysis["analysis_id"] == analysis_id:
                return {"status": analysis["status"], "reason": analysis.get("reason")}
    return None


def summary(http: requests.Session, server: str, file_id: str, analysis_id: int, out=sys.stdout) -> None:
    analysis = http.get(f"{server}/cinema/{analysis_id}/", params={"file_id": file_id}, timeout=30).json()
    out.write(f"\nsuggested rating: {analysis['suggested_age_rating']}   target: {analysis['target_audience']}\n")
    for violation in analysis["violations"]:
        out.write(f"  {violation['count']:>4} × {violation['name']} ({violation['severity']})\n")
    if not analysis["violations"]:
        out.write("  no category found\n")
    if analysis.get("result_url"):
        out.write(f"report: {analysis['result_url']}\n")


def upload_command(args: argparse.Namespace) -> int:
    server = args.server.rstrip("/")
    file = Path(args.file)
    if not file.is_file():
        raise SystemExit(f"{file}: no such file")
    state = ResumeState(state_path())
    key = ResumeState.fingerprint(server, file)
    entry = state.entries.get(key, {})
    http = requests.Session()
    offset = server_offset(http, entry["url"]) if entry.get("url") else None
    if offset is None:
        entry = {"url": create_upload(http, server, file)}
        offset = 0
    else:
        sys.stderr.write(f"resuming at {offset} bytes\n")
    state.entries[key] = entry
    state.save()
    file_id = entry["url"].rstrip("/").rsplit("/", 1)[1]
    if "analysis_id" not in entry:  # asked for at once: the analysis waits for the upload (SPEC §4)
        entry["analysis_id"] = submit(http, server, file_id, args.target, args.title)
        state.save()
    print(f"file {file_id}, analysis {entry['analysis_id']}")
    send(http, entry["url"], file, offset, Progress(file.stat().st_size), args.chunk_size)
    del state.entries[key]
    state.save()
    if args.watch:
        return watch(http, server, file_id, entry["analysis_id"])
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    upload = commands.add_parser("upload", help="upload a screenplay and ask for its age rating")
    upload.add_argument("file")
    upload.add_argument("--target", required=True, choices=AGES)
    upload.add_argument("--title")
    upload.add_argument("--watch", action="store_true", help="follow the statuses and print the summary")
    upload.add_argument("--chunk-size", type=int, default=CHUNK, help="bytes per PATCH (smaller on a flaky link)")
    upload.add_argument("--server", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:5000"))
    args = parser.parse_args(argv)
    try:
        return upload_command(args)
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted: run the same command again to resume\n")
        return 130
