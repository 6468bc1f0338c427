"""`/violations/`: the public violations catalog (the `violation_id`s used everywhere)."""
from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import select

from ..extensions import db
from ..models import BasisViolation

bp = Blueprint("violations", __name__)


def describe(violation: BasisViolation) -> dict:
    return {"id": violation.id, "code": violation.code, "name": violation.name, "name_en": violation.name_en,
            "context": violation.context, "age_marks": violation.age_marks, "age_min": violation.age_min,
            "age_max": violation.age_max, "marks": violation.marks}


@bp.get("/violations/")
def index():
    rows = db.session.scalars(select(BasisViolation).order_by(BasisViolation.id)).all()
    return jsonify([describe(row) for row in rows])
