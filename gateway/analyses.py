"""Analysis requests (SPEC §4): submitting one, restarting its refer session, and what a reader may see."""
from __future__ import annotations

from sqlalchemy import select, update

from . import fields, refer
from .config import Settings
from .fields import RequestError
from .tus.handler import UPLOAD_ID
from .extensions import db
from .models import Analysis, Comment, File, ReferSession, utc


def submit(settings: Settings, form: dict) -> Analysis:
    file_id = form.get("file_id")
    if not isinstance(file_id, str) or not file_id.strip():
        raise RequestError(400, "file_id is required")
    target = form.get("target_audience")
    if target not in Analysis.AUDIENCES:
        raise RequestError(400, f"target_audience must be one of {', '.join(Analysis.AUDIENCES)}")
    title = fields.text(form.get("title"), "title", 255).strip()
    comment = fields.text(form.get("comment"), "comment", 10000).strip()

    file_id = file_id.strip()
    if not UPLOAD_ID.match(file_id) or db.session.get(File, file_id) is None:
        raise RequestError(404, "no such file")
    refer.lock_file_for_submission(file_id)
    file = db.session.get(File, file_id, populate_existing=True)
    if file.state in (File.TERMINATED, File.EXPIRED):
        db.session.rollback()
        raise RequestError(409, f"the upload was {file.state}; upload the file again")
    _check_slots(settings, file_id)
    analysis = Analysis(file_id=file_id, target_audience=target, title=title, status=Analysis.WAITING)
    db.session.add(analysis)
    db.session.flush()
    if comment:
        db.session.add(Comment(analysis_id=analysis.id, author=Comment.USER, text=comment))
    if file.state == File.COMPLETE:
        refer.start_session(settings, analysis)
    db.session.commit()
    return analysis


def _check_slots(settings: Settings, file_id: str) -> None:
    if refer.open_analyses(file_id) >= settings.refer_max_sessions:
        wait = refer.seconds_until_a_slot_frees(file_id, settings)
        db.session.rollback()
        raise RequestError(429, f"this file already has {settings.refer_max_sessions} open analyses; "
                                 f"retry in {wait} s", headers={"Retry-After": str(wait)})


def restart(settings: Settings, analysis: Analysis) -> Analysis:
    """A fresh refer session for an analysis whose session expired or failed (the seed had no way back)."""
    refer.lock_file_for_submission(analysis.file_id)
    db.session.refresh(analysis)
    if analysis.status != Analysis.ERROR:
        db.session.rollback()
        raise RequestError(409, f"the analysis is {analysis.status}; only one in error can be restarted")
    file = db.session.get(File, analysis.file_id)
    if file.state != File.COMPLETE:
        db.session.rollback()
        raise RequestError(409, f"the upload is {file.state}; it must be complete")
    _check_slots(settings, analysis.file_id)
    refer.start_session(settings, analysis)
    db.session.commit()
    return analysis


def report_failure(analysis: Analysis, reason) -> Analysis:
    """The analyzer gives up (an unreadable or empty file): the analysis ends in error with its reason, and
    its refer session ends with it."""
    reason = fields.text(reason, "reason", 255, required=True)
    if not reason.strip():
        raise RequestError(400, "reason is required")
    if analysis.status != Analysis.PROCESSING:
        raise RequestError(409, f"the analysis is {analysis.status}; only one in processing can fail")
    db.session.execute(update(ReferSession).where(
        ReferSession.analysis_id == analysis.id,
        ReferSession.state.in_((ReferSession.LIVE, ReferSession.FROZEN))).values(
        state=ReferSession.FAILED, next_rotation_at=None))
    refer.set_status(analysis, Analysis.ERROR, reason.strip())
    db.session.commit()
    return analysis


def describe(settings: Settings, analysis: Analysis) -> dict:
    from . import findings

    session = db.session.scalar(select(ReferSession).where(ReferSession.analysis_id == analysis.id)
                                .order_by(ReferSession.id.desc()).limit(1))
    data = {"id": analysis.id, "file_id": analysis.file_id, "status": analysis.status,
            "target_audience": analysis.target_audience, "title": analysis.title,
            "suggested_age_rating": analysis.suggested_age_rating,
            "violations": findings.violation_counts(analysis),
            "result_url": findings.result_url(settings, analysis),
            "created_at": utc(analysis.created_at).isoformat(),
            "refer_state": session.state if session else None}
    if analysis.reason:
        data["reason"] = analysis.reason
    return data


def snapshot(file_id: str) -> dict:
    """What a browser watching the file sees first: the upload and every analysis with its status."""
    from flask import current_app

    from .tus import TusError

    db.session.expire_all()
    file = db.session.get(File, file_id)
    offset, length = file.offset, file.length
    if file.state == File.UPLOADING:  # the row is updated every few seconds; the store knows the byte
        try:
            live = current_app.extensions["tus"].store.get(file_id)
            offset, length = live.offset, live.length
        except TusError:
            pass
    analyses = db.session.scalars(select(Analysis).where(Analysis.file_id == file_id).order_by(Analysis.id)).all()
    return {
        "file": {"id": file.id, "state": file.state, "offset": offset, "length": length,
                 "filename": file.filename, "content_type": file.content_type, "sha256": file.sha256},
        "analyses": [{"analysis_id": a.id, "status": a.status, "reason": a.reason,
                      "target_audience": a.target_audience, "title": a.title} for a in analyses],
    }
