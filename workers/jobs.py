"""RQ job functions: plain importable functions with plain arguments, each a thin call into the domain.

They run inside the worker's app context (see `workers.__main__`).
"""
from flask import current_app
from sqlalchemy import select

from gateway import handoff, metrics, refer
from gateway.extensions import db
from gateway.models import Analysis, File


def expire_uploads() -> int:
    """Remove unfinished uploads past UPLOAD_EXPIRATION_SECONDS, bytes and rows."""
    return len(current_app.extensions["tus"].expire())


def sweep_refer_sessions() -> dict:
    """The refer scheduler's beat: rotate due keys, end lapsed sessions, start sessions an interrupted
    completion missed. Reads everything from the database, so a
    restarted worker or a flushed Redis picks up exactly where the schedule stands."""
    settings = current_app.config["SETTINGS"]
    rotated = refer.rotate_due(settings)
    if rotated:
        metrics.count(current_app.extensions["redis"], "refer_rotations_total", rotated)
    ended = refer.expire_due()
    stranded = db.session.scalars(select(Analysis.file_id).join(File).where(
        Analysis.status == Analysis.WAITING, File.state == File.COMPLETE).distinct()).all()
    for file_id in stranded:
        refer.start_waiting(settings, file_id)
    db.session.commit()
    return {"rotated": rotated, "ended": ended, "started": len(stranded)}


def queue_due_handoffs() -> int:
    """Hand-offs that are due (first attempts a crash lost, retries after their back-off), queued once each."""
    due = handoff.due()
    for session_id in due:
        handoff.enqueue_delivery(session_id)
    return len(due)


def deliver_handoff(session_id: int) -> str:
    return handoff.deliver(current_app.config["SETTINGS"], session_id)
