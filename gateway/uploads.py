"""What the app does when the tus server reports on an upload: keep the `File` table true.

Each listener commits its own transaction and is idempotent, as `gateway.tus.hooks` asks.
"""
from __future__ import annotations

import mimetypes
import re
import time
import unicodedata
from datetime import datetime, timezone

from flask import current_app

from . import events, metrics, refer
from .extensions import db
from .models import Analysis, File, utcnow
from .tus import Hooks, UploadInfo

_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")


def display_name(raw: str | None) -> str:
    """A file name fit to show and to put in a Content-Disposition: never a path, never control characters."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 16 else name[:200]
    return name or "upload"


def declared_type(info: UploadInfo) -> str:
    declared = (info.metadata.get("filetype") or "").strip()
    if _MIME.match(declared):
        return declared.lower()
    guessed, _ = mimetypes.guess_type(info.metadata.get("filename") or "")
    return guessed or "application/octet-stream"


def _timestamp(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds else None


def on_created(info: UploadInfo) -> None:
    db.session.add(File(id=info.id, state=File.UPLOADING, length=info.length, offset=info.offset,
                        filename=display_name(info.metadata.get("filename")), content_type=declared_type(info),
                        expires_at=_timestamp(info.expires_at)))
    db.session.commit()


RECORD_PROGRESS_EVERY = 2.0
_progress_recorded: dict[str, float] = {}


def on_progress(info: UploadInfo) -> None:
    """Watchers hear of every step; the row is brought up to date every couple of seconds only (a commit per
    chunk would cost more than the chunk). Live offsets are read from the store (see `analyses.snapshot`)."""
    events.publish(current_app.extensions["redis"], info.id, "upload",
                   {"state": File.UPLOADING, "offset": info.offset, "length": info.length})
    now = time.monotonic()
    if now - _progress_recorded.get(info.id, 0.0) < RECORD_PROGRESS_EVERY:
        return
    if len(_progress_recorded) > 10_000:
        _progress_recorded.clear()
    _progress_recorded[info.id] = now
    db.session.query(File).filter(File.id == info.id, File.state == File.UPLOADING).update(
        {File.offset: info.offset, File.length: info.length, File.expires_at: _timestamp(info.expires_at)})
    db.session.commit()


def on_finished(info: UploadInfo) -> None:
    file = db.session.get(File, info.id, with_for_update=True)
    if file is None:  # created before the app listened (or its row was lost): record it now
        file = File(id=info.id, filename=display_name(info.metadata.get("filename")),
                    content_type=declared_type(info))
        db.session.add(file)
    elif file.state == File.COMPLETE:
        db.session.rollback()
        return
    file.state = File.COMPLETE
    file.length = info.length
    file.offset = info.offset
    file.sha256 = info.sha256
    file.completed_at = utcnow()
    file.expires_at = None
    events.after_commit(info.id, "upload", {"state": File.COMPLETE, "offset": info.offset, "length": info.length,
                                            "sha256": info.sha256})
    # "The key is created when the file is first saved on disk": analyses that waited start now.
    refer.start_waiting(current_app.config["SETTINGS"], info.id)
    db.session.commit()


def on_terminated(info: UploadInfo, reason: str) -> None:
    state = File.EXPIRED if reason == "expired" else File.TERMINATED
    db.session.query(File).filter(File.id == info.id).update({File.state: state})
    refer.end_sessions_of_file(info.id)
    for analysis in Analysis.query.filter(Analysis.file_id == info.id,
                                          Analysis.status.in_((Analysis.WAITING, Analysis.PROCESSING))):
        refer.set_status(analysis, Analysis.ERROR, f"upload {state}")
    events.after_commit(info.id, "upload", {"state": state})
    db.session.commit()


def hooks(redis) -> Hooks:
    counters = {"bytes": "upload_bytes_received_total", "takeover": "upload_lock_takeovers_total",
                "refused": "upload_lock_refused_total"}
    return Hooks(created=[on_created], progress=[on_progress], finished=[on_finished],
                 terminated=[on_terminated],
                 counted=[lambda kind, amount=1: metrics.count(redis, counters[kind], amount)])
