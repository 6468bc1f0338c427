"""Liveness for load balancers, metrics for Prometheus."""
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from .. import metrics
from ..extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    state = {}
    try:
        db.session.execute(text("SELECT 1"))
        state["db"] = "ok"
    except Exception as error:  # any driver error means "down"; say which
        db.session.rollback()
        state["db"] = f"down: {error.__class__.__name__}"
    try:
        current_app.extensions["redis"].ping()
        state["redis"] = "ok"
    except Exception as error:
        state["redis"] = f"down: {error.__class__.__name__}"
    healthy = all(value == "ok" for value in state.values())
    return jsonify(state), 200 if healthy else 503


@bp.get("/metrics")
def prometheus_metrics():
    return metrics.render(current_app.extensions["redis"]), 200, {"Content-Type": "text/plain; version=0.0.4"}
