"""`/cinema/`: analysis requests."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for
from flask_wtf.csrf import generate_csrf

from .. import analyses
from ..extensions import db
from ..fields import RequestError, row_id
from ..models import Analysis
from .auth import analyst_logged_in, bearer_ok, may_read, require_bearer, require_browser_or_token, shows_file_id

bp = Blueprint("cinema", __name__)


JSON_LIMIT = 1024 * 1024


def _fields() -> dict:
    if request.content_length is not None and request.content_length > JSON_LIMIT:
        raise RequestError(413, f"the body is larger than {JSON_LIMIT} bytes")
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise RequestError(400, "the body must be a JSON object")
        return body
    return request.form.to_dict()


def events_url(file_id: str) -> str:
    public = current_app.config["SETTINGS"].public_url
    path = url_for("events.file_events", file_id=file_id)
    return (public + path) if public else url_for("events.file_events", file_id=file_id, _external=True)


@bp.get("/csrftoken/")
def csrf_token():
    """The token browser POSTs carry as X-CSRFToken; the session cookie it is bound to comes with it."""
    response = jsonify(csrfToken=generate_csrf())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/cinema/")
def submit():
    require_browser_or_token()
    analysis = analyses.submit(current_app.config["SETTINGS"], _fields())
    return jsonify(id=analysis.id, file_id=analysis.file_id, status=analysis.status,
                   events_url=events_url(analysis.file_id)), 201


def _readable(analysis_id: int, file_id: str | None) -> Analysis | None:
    analysis = db.session.get(Analysis, analysis_id) if row_id(analysis_id) else None
    if analysis is None or not may_read(analysis.file_id, file_id):
        return None
    return analysis


@bp.get("/cinema/<int:analysis_id>/")
def show(analysis_id: int):
    analysis = _readable(analysis_id, request.args.get("file_id"))
    if analysis is None:
        return jsonify(error="no such analysis"), 404
    return jsonify(analyses.describe(current_app.config["SETTINGS"], analysis))


@bp.post("/cinema/<int:analysis_id>/refer/")
def restart(analysis_id: int):
    body = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    file_id = body.get("file_id") if isinstance(body, dict) else None
    analysis = db.session.get(Analysis, analysis_id) if row_id(analysis_id) else None
    allowed = analysis is not None and (bearer_ok() or analyst_logged_in() or shows_file_id(analysis.file_id,
                                                                                              file_id))
    if not allowed:
        return jsonify(error="no such analysis"), 404
    if not (bearer_ok() or analyst_logged_in()):
        require_browser_or_token()
    analyses.restart(current_app.config["SETTINGS"], analysis)
    return jsonify(analyses.describe(current_app.config["SETTINGS"], analysis)), 201


@bp.post("/cinema/<int:analysis_id>/error/")
def report_failure(analysis_id: int):
    """The analyzer cannot analyse the file (unreadable, empty): it says why, and the analysis ends in error."""
    require_bearer()
    analysis = db.session.get(Analysis, analysis_id) if row_id(analysis_id) else None
    if analysis is None:
        return jsonify(error="no such analysis"), 404
    body = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    analyses.report_failure(analysis, body.get("reason") if isinstance(body, dict) else None)
    return jsonify(analyses.describe(current_app.config["SETTINGS"], analysis))
