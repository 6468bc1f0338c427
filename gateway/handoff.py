"""The hand-off (SPEC §4): telling the analyzer that a refer session has started.

With ANALYZER_URL set, a signed JSON POST, retried after 1 s, 2 s, 4 s… (capped at the rotation period) while
the session lives, each attempt carrying the then-current key. Without it, the same payload is queued for the
built-in analyzer. Delivery state lives on the session row: a job first *claims* the attempt with a
conditional UPDATE (moving `handoff_next_at` a lease ahead), so two workers never send the same attempt, and an
attempt lost with a killed worker is claimed again once its lease runs out.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from functools import lru_cache

import requests
from flask import current_app
from rq import Queue
from sqlalchemy import select, update

from . import metrics
from .config import Settings
from .extensions import db
from .models import Analysis, File, ReferKey, ReferSession

HANDOFF_QUEUE = "handoff"
ANALYZER_QUEUE = "analyzer"
REQUEST_TIMEOUT = 10.0
LEASE_SECONDS = REQUEST_TIMEOUT + 5.0
QUEUED_MARK_SECONDS = 600


@lru_cache(maxsize=1)
def _http() -> requests.Session:
    """One keep-alive session per worker process for the webhook."""
    return requests.Session()


def _queue(name: str) -> Queue:
    return Queue(name, connection=current_app.extensions["redis"])


def _queued_key(session_id: int) -> str:
    return f"handoff:queued:{session_id}"


def enqueue_delivery(session_id: int) -> None:
    """Queue a delivery attempt, unless one was queued moments ago (the sweep asks again while it is due)."""
    redis = current_app.extensions["redis"]
    # The mark lasts until the job starts (it lifts it), however long the queue: the sweep asks again while
    # the hand-off is due, and must not stack duplicates. Its TTL only covers a job lost with a flushed Redis.
    if redis.set(_queued_key(session_id), "1", nx=True, ex=QUEUED_MARK_SECONDS):
        _queue(HANDOFF_QUEUE).enqueue("workers.jobs.deliver_handoff", session_id,
                                      job_timeout=int(LEASE_SECONDS * 2), result_ttl=60)


def sign(token: str, body: bytes) -> str:
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def payload(settings: Settings, session: ReferSession) -> dict:
    from .refer import download_url

    analysis = db.session.get(Analysis, session.analysis_id)
    file = db.session.get(File, analysis.file_id)
    key = db.session.get(ReferKey, session.current_key_id)
    base = settings.default_public_url
    return {
        "analysis_id": analysis.id, "file_id": file.id, "refer": key.key,
        "download_url": download_url(settings, key.key), "filename": file.filename, "size": file.length,
        "sha256": file.sha256, "content_type": file.content_type, "target_audience": analysis.target_audience,
        "title": analysis.title, "upload_result_url": download_url(settings, key.key),
        "comments_url": f"{base}/comments/", "recommend_url": f"{base}/recommend/",
        "violations_url": f"{base}/violations/",
        "error_url": f"{base}/cinema/{analysis.id}/error/",
    }


def due(now: float | None = None, limit: int = 500) -> list[int]:
    now = time.time() if now is None else now
    return list(db.session.scalars(select(ReferSession.id).where(
        ReferSession.state == ReferSession.LIVE, ReferSession.handoff_state == ReferSession.HANDOFF_PENDING,
        ReferSession.handoff_next_at <= now).order_by(ReferSession.handoff_next_at).limit(limit)))


def _claim(session_id: int, now: float) -> bool:
    claimed = db.session.execute(update(ReferSession).where(
        ReferSession.id == session_id, ReferSession.state == ReferSession.LIVE,
        ReferSession.handoff_state == ReferSession.HANDOFF_PENDING, ReferSession.handoff_next_at <= now,
        ReferSession.ends_at > now,
    ).values(handoff_next_at=now + LEASE_SECONDS, handoff_attempts=ReferSession.handoff_attempts + 1)).rowcount
    db.session.commit()
    return bool(claimed)


def deliver(settings: Settings, session_id: int) -> str:
    """One attempt, if one is due. Returns what happened: "not due", "delivered", "retry" or "failed"."""
    from .refer import set_status

    current_app.extensions["redis"].delete(_queued_key(session_id))  # from here on, a new attempt may queue
    now = time.time()
    if not _claim(session_id, now):
        return "not due"
    session = db.session.get(ReferSession, session_id, populate_existing=True)
    body = payload(settings, session)
    error = None
    if settings.analyzer_url:
        raw = json.dumps(body).encode()
        metrics.count(current_app.extensions["redis"], "handoff_attempts_total")
        try:
            answer = _http().post(settings.analyzer_url, data=raw, timeout=REQUEST_TIMEOUT, headers={
                "Content-Type": "application/json", "X-Signature": sign(settings.analyzer_token, raw)})
            if not 200 <= answer.status_code < 300:
                error = f"analyzer answered {answer.status_code}"
        except requests.RequestException as failure:
            error = f"analyzer unreachable: {failure.__class__.__name__}"
    else:
        # The description replaces the arguments in RQ's logs: the payload carries the refer key.
        _queue(ANALYZER_QUEUE).enqueue("workers.analyzer.run", body, job_timeout=3600,
                                       description=f"built-in analysis of analysis {body['analysis_id']}")

    if error is None:
        db.session.execute(update(ReferSession).where(
            ReferSession.id == session_id, ReferSession.handoff_state == ReferSession.HANDOFF_PENDING)
            .values(handoff_state=ReferSession.HANDOFF_DELIVERED, handoff_next_at=None, handoff_error=None))
        db.session.commit()
        return "delivered"

    metrics.count(current_app.extensions["redis"], "handoff_failures_total")
    retry_at = time.time() + min(2 ** (session.handoff_attempts - 1), settings.refer_rotation_seconds)
    if retry_at < session.ends_at:
        db.session.execute(update(ReferSession).where(ReferSession.id == session_id)
                           .values(handoff_next_at=retry_at, handoff_error=error[:255]))
        db.session.commit()
        return "retry"
    failed = db.session.execute(update(ReferSession).where(
        ReferSession.id == session_id, ReferSession.state == ReferSession.LIVE).values(
        state=ReferSession.FAILED, handoff_state=ReferSession.HANDOFF_FAILED, next_rotation_at=None,
        handoff_next_at=None, handoff_error=error[:255])).rowcount
    if failed:
        set_status(db.session.get(Analysis, session.analysis_id), Analysis.ERROR, "hand-off failed")
    db.session.commit()
    return "failed"
