"""The built-in analyzer: consumes the hand-off queue and works only through the public HTTP API, exactly as
an outside analyzer would. This first part fetches the file by its refer key (resuming with Range when the
connection breaks) and checks it against the SHA-256 of the hand-off."""
from __future__ import annotations

import hashlib
import tempfile
import time

import requests

CHUNK = 1024 * 1024


class FetchError(Exception):
    pass


def fetch(handoff: dict, into, attempts: int = 5) -> None:
    """Download `download_url` into the open binary file `into`, resuming after breaks; verify SHA-256."""
    digest = hashlib.sha256()
    received = 0
    for attempt in range(attempts):
        headers = {"Range": f"bytes={received}-"} if received else {}
        try:
            with requests.get(handoff["download_url"], headers=headers, stream=True, timeout=30) as answer:
                if answer.status_code not in (200, 206) or (received and answer.status_code != 206):
                    raise FetchError(f"download answered {answer.status_code}")
                for block in answer.iter_content(CHUNK):
                    into.write(block)
                    digest.update(block)
                    received += len(block)
            break
        except requests.RequestException:
            time.sleep(min(2 ** attempt, 10))
    else:
        raise FetchError("the download kept breaking")
    if handoff.get("size") is not None and received != handoff["size"]:
        raise FetchError(f"got {received} bytes of {handoff['size']}")
    if handoff.get("sha256") and digest.hexdigest() != handoff["sha256"]:
        raise FetchError("the file's SHA-256 does not match the hand-off")


def run(handoff: dict) -> dict:
    with tempfile.TemporaryFile() as copy:
        fetch(handoff, copy)
        return {"analysis_id": handoff["analysis_id"], "bytes": copy.tell()}
