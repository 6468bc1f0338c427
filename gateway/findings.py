"""What the analyzer (and the user) say about a script (SPEC §6): comments, the one combined recommendation,
the result file, and the statuses `ready` / `db_ready` they lead to."""
from __future__ import annotations

import hashlib
import math
import os
import secrets
import time
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select, update

from . import events, fields, refer
from .config import Settings
from .fields import RequestError, row_id, row_id_text
from .extensions import db
from .models import (AGES, SEVERITIES, Analysis, BasisViolation, Comment, Recommendation, ReferSession, ViolationCount,
                     utc)
from .uploads import display_name

SEVERITY_POSITION = {"mild": 0.0, "moderate": 0.5, "severe": 1.0, "----": 0.0}


def violation_field(value, name: str = "violation_id") -> BasisViolation:
    violation_id = row_id(value) if not isinstance(value, str) else None
    violation = db.session.get(BasisViolation, violation_id) if violation_id else None
    if violation is None:
        raise RequestError(400, f"{name} must be the id of a catalog entry (GET /violations/), got {value!r:.40}")
    return violation


# -- naming the analysis ---------------------------------------------------------------------------
def analysis_named_by(body: dict) -> Analysis:
    """`analysis_id`, or the analysis's live (or frozen) `refer` key."""
    if body.get("refer") is not None:
        if not isinstance(body["refer"], str):
            raise RequestError(400, "refer must be text")
        try:
            return refer.resolve(body["refer"]).analysis
        except refer.ReferError as error:
            raise RequestError(error.status, error.message) from None
    raw = body.get("analysis_id")
    if isinstance(raw, bool) or not (isinstance(raw, int) or isinstance(raw, str) and raw.isascii() and raw.isdigit()):
        raise RequestError(400, "name the analysis by analysis_id (a number) or by its refer key")
    analysis_id = row_id_text(raw) if isinstance(raw, str) else row_id(raw)
    analysis = db.session.get(Analysis, analysis_id) if analysis_id else None
    if analysis is None:
        raise RequestError(404, "no such analysis")
    return analysis


# -- comments --------------------------------------------------------------------------------------
def add_comment(analysis: Analysis, body: dict, author: str) -> Comment:
    comment = Comment(analysis_id=analysis.id, author=author,
                      text=fields.text(body.get("text"), "text", 20000, required=True),
                      severity=fields.choice(body, "severity", SEVERITIES, default="----"),
                      count=fields.count(body.get("count", 1)),
                      location=fields.text(body.get("location"), "location", 255),
                      quote=fields.text(body.get("quote"), "quote", 5000))
    if body.get("violation_id") is not None:
        comment.violation_id = violation_field(body["violation_id"]).id
    db.session.add(comment)
    db.session.flush()
    _refresh_suggestion(analysis)
    events.after_commit(analysis.file_id, "comment", comment_json(comment))
    db.session.commit()
    return comment


def comment_json(comment: Comment) -> dict:
    return {"id": comment.id, "analysis_id": comment.analysis_id, "author": comment.author, "text": comment.text,
            "violation_id": comment.violation_id,
            "name": comment.violation.name if comment.violation_id and comment.violation else None,
            "severity": comment.severity, "count": comment.count, "location": comment.location,
            "quote": comment.quote, "created_at": utc(comment.created_at).isoformat() if comment.created_at else None}


def comments_of(analysis: Analysis) -> list[dict]:
    rows = db.session.scalars(select(Comment).where(Comment.analysis_id == analysis.id).order_by(Comment.id))
    return [comment_json(c) for c in rows]


# -- recommendation ----------------------------------------------------------------------------------
def recommend(analysis: Analysis, body: dict) -> tuple[Recommendation, bool]:
    """Store (or replace) the one combined recommendation. Returns it and whether it was created."""
    text = fields.text(body.get("text"), "text", 20000, required=True)
    rating = fields.choice(body, "rating", SEVERITIES, required=True)
    age_rating = fields.choice(body, "age_rating", AGES, required=True)
    items = body.get("violations", [])
    if not isinstance(items, list) or len(items) > 1000:
        raise RequestError(400, "violations must be a list of {violation_id, count, severity}")
    counts = []
    seen = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestError(400, f"violations[{index}] must be an object")
        violation = violation_field(item.get("violation_id"), f"violations[{index}].violation_id")
        if violation.id in seen:
            raise RequestError(400, f"violations[{index}]: violation {violation.id} is listed twice")
        seen.add(violation.id)
        counts.append(ViolationCount(violation_id=violation.id,
                                     count=fields.count(item.get("count"), f"violations[{index}].count"),
                                     severity=fields.choice(item, "severity", SEVERITIES, default="----")))
    user_comment_id = body.get("user_comment_id")
    if user_comment_id is not None:
        comment = db.session.get(Comment, row_id(user_comment_id)) if row_id(user_comment_id) else None
        if comment is None or comment.analysis_id != analysis.id or comment.author != Comment.USER:
            raise RequestError(400, "user_comment_id must name a User comment of this analysis")

    recommendation = db.session.scalar(select(Recommendation).where(Recommendation.analysis_id == analysis.id))
    created = recommendation is None
    if created:
        recommendation = Recommendation(analysis_id=analysis.id)
        db.session.add(recommendation)
    recommendation.text, recommendation.rating, recommendation.age_rating = text, rating, age_rating
    recommendation.user_comment_id = user_comment_id
    if not created:  # the old counts go first: the new ones may name the same violations
        recommendation.counts = []
        db.session.flush()
    recommendation.counts = counts
    db.session.flush()
    _refresh_suggestion(analysis)
    if analysis.status == Analysis.READY:
        refer.set_status(analysis, Analysis.DB_READY)
    db.session.commit()
    return recommendation, created


def recommendation_json(recommendation: Recommendation) -> dict:
    return {"id": recommendation.id, "analysis_id": recommendation.analysis_id, "text": recommendation.text,
            "rating": recommendation.rating, "age_rating": recommendation.age_rating,
            "user_comment_id": recommendation.user_comment_id,
            "violations": [{"violation_id": c.violation_id, "name": c.violation.name, "count": c.count,
                            "severity": c.severity} for c in recommendation.counts]}


# -- the suggested rating ------------------------------------------------------------------------------
def age_for(violation: BasisViolation, severity: str) -> str | None:
    """A finding's severity picks within its category's range: mild the lower bound, severe the upper."""
    if severity == "None" or not violation.age_min:
        return None
    marks = [age for age in AGES if AGES.index(violation.age_min) <= AGES.index(age) <= AGES.index(
        violation.age_max or violation.age_min)]
    listed = [m.strip() for m in violation.age_marks.split("/") if m.strip() in AGES] or marks
    position = SEVERITY_POSITION.get(severity, 0.0)
    return listed[math.ceil(position * (len(listed) - 1))]


def suggested_rating(findings: list[tuple[BasisViolation, str]]) -> str:
    ages = [age for violation, severity in findings if (age := age_for(violation, severity))]
    return max(ages, key=AGES.index) if ages else "0+"


def _refresh_suggestion(analysis: Analysis) -> None:
    recommendation = db.session.scalar(select(Recommendation).where(Recommendation.analysis_id == analysis.id))
    if recommendation is not None:
        findings = [(c.violation, c.severity) for c in recommendation.counts if c.count > 0]
    else:
        findings = [(c.violation, c.severity) for c in db.session.scalars(select(Comment).where(
            Comment.analysis_id == analysis.id, Comment.violation_id.is_not(None)))]
        if not findings:
            return
    analysis.suggested_age_rating = suggested_rating(findings)


def violation_counts(analysis: Analysis) -> list[dict]:
    """Counts per violation: as the recommendation states them, else summed from the comments."""
    recommendation = db.session.scalar(select(Recommendation).where(Recommendation.analysis_id == analysis.id))
    if recommendation is not None:
        return recommendation_json(recommendation)["violations"]
    rows = db.session.execute(select(Comment.violation_id, BasisViolation.name, func.sum(Comment.count))
                              .join(BasisViolation, BasisViolation.id == Comment.violation_id)
                              .where(Comment.analysis_id == analysis.id)
                              .group_by(Comment.violation_id, BasisViolation.name)
                              .order_by(Comment.violation_id)).all()
    return [{"violation_id": vid, "name": name, "count": int(total), "severity": None} for vid, name, total in rows]


# -- the result file -------------------------------------------------------------------------------
def results_dir(settings: Settings) -> Path:
    return settings.media_root / "results"


def result_path(settings: Settings, analysis: Analysis) -> Path:
    return results_dir(settings) / str(analysis.id) / analysis.result_key


def store_result(settings: Settings, analysis: Analysis, source: BinaryIO, filename: str, content_type: str,
                 limit: int) -> Analysis:
    """Stream the analyzer's result to disk, then make it the analysis's result (replacing an earlier one)."""
    folder = results_dir(settings) / str(analysis.id)
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    temp = folder / f".{key}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(temp, "wb") as out:
            while block := source.read(1024 * 1024):
                size += len(block)
                if size > limit:
                    raise RequestError(413, f"the result file is larger than {limit} bytes")
                out.write(block)
                digest.update(block)
        if size == 0:
            raise RequestError(400, "the result file is empty")
        os.replace(temp, folder / key)
    finally:
        temp.unlink(missing_ok=True)
    previous = result_path(settings, analysis) if analysis.result_key else None
    analysis.result_key, analysis.result_size, analysis.result_sha256 = key, size, digest.hexdigest()
    analysis.result_filename = display_name(filename or "result")
    analysis.result_content_type = content_type or "application/octet-stream"
    # The result ends the refer session's watch for it: no "no result" failure later.
    db.session.execute(update(ReferSession).where(
        ReferSession.analysis_id == analysis.id,
        ReferSession.state.in_((ReferSession.LIVE, ReferSession.FROZEN))).values(
        state=ReferSession.DONE, next_rotation_at=None,
        frozen_until=func.coalesce(ReferSession.frozen_until, time.time())))
    refer.set_status(analysis, Analysis.READY)
    events.after_commit(analysis.file_id, "ready", {"analysis_id": analysis.id,
                                                    "result_url": result_url(settings, analysis)})
    if db.session.scalar(select(Recommendation.id).where(Recommendation.analysis_id == analysis.id)):
        refer.set_status(analysis, Analysis.DB_READY)
    db.session.commit()
    if previous and previous.exists():
        previous.unlink()
    return analysis


def result_url(settings: Settings, analysis: Analysis) -> str | None:
    if not analysis.result_key:
        return None
    return f"{settings.default_public_url}/results/{analysis.result_key}/"


def find_result(key: str) -> Analysis | None:
    if not refer.KEY_PATTERN.match(key or ""):
        return None
    return db.session.scalar(select(Analysis).where(Analysis.result_key == key))
