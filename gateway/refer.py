"""Refer sessions (SPEC §4): issue, rotation, grace, freeze on first download, expiry.

Every transition is one conditional UPDATE of the session row ("compare and set"): it names the state it
expects, and a rowcount of 0 means somebody else moved first. That is what makes several workers, a rotation
racing a download, and a restart after a crash safe on PostgreSQL and SQLite alike, with the database as the
only source of truth. Times are epoch seconds.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update

from . import events, handoff
from .config import Settings
from .extensions import db, on_commit
from .models import Analysis, File, ReferKey, ReferSession

ROTATION_COMMIT_EVERY = 50
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22,64}$")


class ReferError(Exception):
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UnknownKey(ReferError):
    status = 404


class DeadKey(ReferError):
    status = 410


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key(session_id: int, now: float) -> ReferKey:
    key = secrets.token_urlsafe(24)  # 192 random bits
    row = ReferKey(session_id=session_id, key=key, key_hash=_hash(key), issued_at=now)
    db.session.add(row)
    db.session.flush()
    return row


def download_url(settings: Settings, key: str) -> str:
    return f"{settings.default_public_url}/download/{key}/"


def _announce_key(settings: Settings, session: ReferSession, key: ReferKey, analysis: Analysis) -> None:
    expires_at = min(session.next_rotation_at or session.ends_at, session.ends_at) + settings.refer_grace_seconds
    events.after_commit(analysis.file_id, "refer", {
        "analysis_id": analysis.id, "download_url": download_url(settings, key.key),
        "expires_at": min(expires_at, session.ends_at)})


def set_status(analysis: Analysis, status: str, reason: str | None = None) -> None:
    analysis.status = status
    analysis.reason = reason
    payload = {"analysis_id": analysis.id, "status": status}
    if reason:
        payload["reason"] = reason
    events.after_commit(analysis.file_id, "status", payload)


# -- starting ------------------------------------------------------------------------------------------
def start_session(settings: Settings, analysis: Analysis, now: float | None = None) -> ReferSession:
    """Issue the first key and queue the hand-off. The caller commits."""
    now = time.time() if now is None else now
    session = ReferSession(analysis_id=analysis.id, state=ReferSession.LIVE, started_at=now,
                           ends_at=now + settings.refer_lifetime_seconds,
                           next_rotation_at=now + settings.refer_rotation_seconds,
                           handoff_state=ReferSession.HANDOFF_PENDING, handoff_attempts=0, handoff_next_at=now)
    db.session.add(session)
    db.session.flush()
    key = _new_key(session.id, now)
    session.current_key_id = key.id
    set_status(analysis, Analysis.PROCESSING)
    _announce_key(settings, session, key, analysis)
    session_id = session.id
    on_commit(lambda: handoff.enqueue_delivery(session_id))
    return session


def start_waiting(settings: Settings, file_id: str) -> list[ReferSession]:
    """The file is complete: every analysis waiting for it gets its session now. The caller commits."""
    waiting = db.session.scalars(select(Analysis).where(Analysis.file_id == file_id,
                                                        Analysis.status == Analysis.WAITING)).all()
    return [start_session(settings, analysis) for analysis in waiting]


# -- reading a key ---------------------------------------------------------------------------------------
@dataclass
class Resolved:
    key: ReferKey
    session: ReferSession
    analysis: Analysis
    file: File


def key_is_valid(session: ReferSession, key_id: int, now: float) -> bool:
    if session.state == ReferSession.LIVE:
        if now >= session.ends_at:
            return False
        return key_id == session.current_key_id or (
            key_id == session.previous_key_id and (session.previous_valid_until or 0) > now)
    if session.state in (ReferSession.FROZEN, ReferSession.DONE):
        return key_id == session.frozen_key_id and (session.frozen_until or 0) > now
    return False


def resolve(key: str, now: float | None = None) -> Resolved:
    """The session behind a key that may be used now; UnknownKey (404) or DeadKey (410) otherwise."""
    now = time.time() if now is None else now
    if not KEY_PATTERN.match(key or ""):
        raise UnknownKey("no such refer key")
    row = db.session.scalar(select(ReferKey).where(ReferKey.key_hash == _hash(key)))
    if row is None or not hmac.compare_digest(row.key, key):
        raise UnknownKey("no such refer key")
    session = db.session.get(ReferSession, row.session_id, populate_existing=True)
    if not key_is_valid(session, row.id, now):
        raise DeadKey("this refer key has expired or was replaced")
    analysis = db.session.get(Analysis, session.analysis_id)
    file = db.session.get(File, analysis.file_id)
    if file.state != File.COMPLETE:
        raise DeadKey(f"the file was {file.state}")
    return Resolved(row, session, analysis, file)


def freeze(settings: Settings, key: str) -> Resolved:
    """A first download: freeze the key it used, kill the others, stop rotation. Idempotent for that key."""
    for _ in range(5):
        now = time.time()
        found = resolve(key, now)
        if found.session.state != ReferSession.LIVE:
            return found  # already frozen by this very key (resolve checked it)
        frozen = db.session.execute(
            update(ReferSession).where(
                ReferSession.id == found.session.id, ReferSession.state == ReferSession.LIVE,
                ReferSession.ends_at > now,
                or_(ReferSession.current_key_id == found.key.id,
                    and_(ReferSession.previous_key_id == found.key.id, ReferSession.previous_valid_until > now)))
            .values(state=ReferSession.FROZEN, frozen_key_id=found.key.id,
                    frozen_until=now + settings.refer_frozen_ttl_seconds, next_rotation_at=None)
        ).rowcount
        if frozen:
            events.after_commit(found.analysis.file_id, "downloading", {"analysis_id": found.analysis.id})
            db.session.commit()
            db.session.refresh(found.session)
            return found
        db.session.rollback()  # a rotation moved first: look again (the key may still be in its grace)
    raise DeadKey("this refer key could not be frozen; ask for a fresh one")


# -- the scheduler's work ---------------------------------------------------------------------------------
def rotate_due(settings: Settings, now: float | None = None, limit: int = 500) -> int:
    """Replace every key whose time has come. Returns how many were replaced."""
    now = time.time() if now is None else now
    due = db.session.execute(
        select(ReferSession.id, ReferSession.current_key_id, ReferSession.next_rotation_at)
        .where(ReferSession.state == ReferSession.LIVE, ReferSession.next_rotation_at <= now,
               ReferSession.ends_at > now)
        .order_by(ReferSession.next_rotation_at).limit(limit)).all()
    rotated = 0
    for index, (session_id, current_key_id, scheduled) in enumerate(due, start=1):
        key = _new_key(session_id, now)
        following = scheduled + settings.refer_rotation_seconds
        if following <= now:  # we were down for longer than a period: keep the rhythm from now on
            following = now + settings.refer_rotation_seconds
        moved = db.session.execute(
            update(ReferSession).where(ReferSession.id == session_id, ReferSession.state == ReferSession.LIVE,
                                       ReferSession.current_key_id == current_key_id,
                                       ReferSession.next_rotation_at == scheduled)
            .values(previous_key_id=current_key_id, previous_valid_until=now + settings.refer_grace_seconds,
                    current_key_id=key.id, next_rotation_at=following, rotations=ReferSession.rotations + 1)
        ).rowcount
        if not moved:
            db.session.delete(key)
            continue
        rotated += 1
        session = db.session.get(ReferSession, session_id, populate_existing=True)
        _announce_key(settings, session, key, db.session.get(Analysis, session.analysis_id))
        if index % ROTATION_COMMIT_EVERY == 0:  # land keys as they are made; shorter write locks on SQLite
            db.session.commit()
    db.session.commit()
    return rotated


def expire_due(now: float | None = None, limit: int = 500) -> int:
    """End sessions nobody downloaded in time, and frozen ones whose result never came."""
    now = time.time() if now is None else now
    ended = 0
    lapsed = db.session.scalars(select(ReferSession).where(
        ReferSession.state == ReferSession.LIVE, ReferSession.ends_at <= now).limit(limit)).all()
    for session in lapsed:
        if _move(session, ReferSession.LIVE, ReferSession.EXPIRED):
            reason = "refer expired" if session.handoff_state == ReferSession.HANDOFF_DELIVERED \
                else "hand-off failed"
            _fail_analysis(session, reason)
            ended += 1
    silent = db.session.scalars(select(ReferSession).where(
        ReferSession.state == ReferSession.FROZEN, ReferSession.frozen_until <= now).limit(limit)).all()
    for session in silent:
        if _move(session, ReferSession.FROZEN, ReferSession.FAILED):
            _fail_analysis(session, "no result")
            ended += 1
    db.session.commit()
    return ended


def _move(session: ReferSession, expected: str, new: str) -> bool:
    return bool(db.session.execute(update(ReferSession).where(
        ReferSession.id == session.id, ReferSession.state == expected).values(
        state=new, next_rotation_at=None)).rowcount)


def _fail_analysis(session: ReferSession, reason: str) -> None:
    analysis = db.session.get(Analysis, session.analysis_id)
    newest = db.session.scalar(select(ReferSession.id).where(ReferSession.analysis_id == analysis.id)
                               .order_by(ReferSession.id.desc()).limit(1))
    if newest == session.id and analysis.status == Analysis.PROCESSING:
        set_status(analysis, Analysis.ERROR, reason)


def end_sessions_of_file(file_id: str) -> None:
    """The file is gone: its live and frozen sessions end, so their keys die with it. The caller commits."""
    db.session.execute(update(ReferSession).where(
        ReferSession.analysis_id.in_(select(Analysis.id).where(Analysis.file_id == file_id)),
        ReferSession.state.in_((ReferSession.LIVE, ReferSession.FROZEN))).values(
        state=ReferSession.FAILED, next_rotation_at=None))


def open_analyses(file_id: str) -> int:
    """Analyses of the file that hold a slot: waiting for the upload, or with a live (unfrozen) session."""
    live = select(ReferSession.id).where(ReferSession.analysis_id == Analysis.id,
                                         ReferSession.state == ReferSession.LIVE).exists()
    return db.session.scalar(select(db.func.count(Analysis.id)).where(
        Analysis.file_id == file_id, or_(Analysis.status == Analysis.WAITING, live)))


def lock_file_for_submission(file_id: str) -> None:
    """Serialize submissions for one file: this UPDATE locks its row (PostgreSQL) or the database (SQLite)
    until the transaction ends, so a count taken after it cannot be overtaken."""
    db.session.execute(update(File).where(File.id == file_id).values(submissions=File.submissions + 1))


def seconds_until_a_slot_frees(file_id: str, settings: Settings) -> int:
    now = time.time()
    soonest = db.session.scalar(select(db.func.min(ReferSession.ends_at)).join(Analysis).where(
        Analysis.file_id == file_id, ReferSession.state == ReferSession.LIVE))
    if soonest is None:
        return max(1, int(settings.refer_lifetime_seconds))
    return max(1, int(soonest - now) + 1)
