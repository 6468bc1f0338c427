"""The built-in analyzer: consumes the hand-off queue and works only through the public HTTP API, exactly as
an outside analyzer would: it downloads the file by its refer key (resuming with Range when the connection
breaks), reads the catalog from GET /violations/, and posts its AI comments, the result file and the
recommendation with the bearer token. An unreadable or empty file ends the analysis in `error` with the reason;
it never makes up a report."""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time

import requests

from gateway.models import AGES

from .assess import Assessment, assess
from .documents import UnreadableDocument, extract_text
from .report import render

log = logging.getLogger(__name__)
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


def verdict(assessment: Assessment, target: str | None) -> str:
    suggested = assessment.suggested_age
    if not target:
        return f"Suggested rating {suggested}."
    if AGES.index(suggested) > AGES.index(target):
        worst = sorted((r for r in assessment.results.values() if assessment.age_of(r.code) == suggested),
                       key=lambda r: -r.count)
        names = ", ".join(assessment.catalog[r.code].name for r in worst[:5])
        return (f"Suggested rating {suggested} is above the target audience {target}: the script does not fit "
                f"{target} as it stands. Categories that set the rating: {names}.")
    return f"Suggested rating {suggested} fits the target audience {target}."


class Client:
    """The analyzer's side of the public API."""

    def __init__(self, handoff: dict, token: str):
        self.handoff = handoff
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def post(self, url: str, **kwargs) -> dict:
        answer = self.http.post(url, timeout=60, **kwargs)
        if answer.status_code >= 400:
            raise FetchError(f"POST {url.split('/download/')[0]} answered {answer.status_code}: {answer.text[:200]}")
        return answer.json()

    def catalog(self) -> list[dict]:
        answer = self.http.get(self.handoff["violations_url"], timeout=30)
        answer.raise_for_status()
        return answer.json()

    def fail(self, reason: str) -> None:
        self.post(self.handoff["error_url"], json={"reason": reason})


def publish(client: Client, handoff: dict, assessment: Assessment) -> None:
    refer = handoff["refer"]
    for result in assessment.results.values():
        entry = assessment.catalog[result.code]
        by_scene: dict[int, list] = {}
        for match in result.matches:
            by_scene.setdefault(match.scene.number, []).append(match)
        for matches in by_scene.values():
            first = matches[0]
            client.post(handoff["comments_url"], json={
                "refer": refer, "author": "AI", "violation_id": entry.id, "severity": max(
                    (m.level for m in matches), key=("mild", "moderate", "severe").index),
                "count": len(matches), "location": f"{first.scene.label}, line {first.line_number}"[:255],
                "quote": first.line[:1000], "text": f"{entry.name}: {first.term}"[:1000]})
    summary = verdict(assessment, handoff.get("target_audience"))
    report = render(assessment, title=handoff.get("title") or "", filename=handoff.get("filename") or "",
                    target=handoff.get("target_audience"), verdict=summary)
    stem = os.path.splitext(handoff.get("filename") or "script")[0]
    client.post(handoff["upload_result_url"], files={"file": (f"{stem}.report.html", report, "text/html")})
    worst = max((r.level for r in assessment.results.values()), key=("mild", "moderate", "severe").index,
                default=None)
    client.post(handoff["recommend_url"], json={
        "refer": refer, "text": summary, "rating": worst or "None", "age_rating": assessment.suggested_age,
        "violations": [{"violation_id": assessment.catalog[r.code].id, "count": r.count, "severity": r.level}
                       for r in assessment.results.values()]})


def run(handoff: dict) -> dict:
    """The RQ job: one hand-off, start to finish."""
    from flask import current_app
    settings = current_app.config["SETTINGS"]
    client = Client(handoff, settings.analyzer_token)
    with tempfile.TemporaryFile() as copy:
        try:
            fetch(handoff, copy)
            text = extract_text(copy)
        except (UnreadableDocument, FetchError) as error:
            client.fail(f"unreadable file: {error}" if isinstance(error, UnreadableDocument) else str(error))
            return {"analysis_id": handoff["analysis_id"], "error": str(error)}
    assessment = assess(text, client.catalog(), model_cache=settings.analyzer_cache_dir)
    publish(client, handoff, assessment)
    return {"analysis_id": handoff["analysis_id"], "rating": assessment.suggested_age,
            "categories": sorted(assessment.results)}
