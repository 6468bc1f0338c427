"""`/comments/`, `/recommend/`, `/results/<key>/`: the analyzer's findings and the user's remarks."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, send_file

from .. import findings
from ..extensions import csrf, db
from ..fields import RequestError, row_id_text
from ..models import Analysis, Comment, Recommendation
from .auth import bearer_given, bearer_ok, may_read, require_bearer, shows_file_id
from .download import content_disposition

bp = Blueprint("findings", __name__)
JSON_LIMIT = 1024 * 1024


def json_body() -> dict:
    if request.content_length is not None and request.content_length > JSON_LIMIT:
        raise RequestError(413, f"the JSON body is larger than {JSON_LIMIT} bytes")
    body = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object")
    return body


def _analysis_for_reading() -> Analysis | None:
    analysis_id = row_id_text(request.args.get("analysis_id"))
    analysis = db.session.get(Analysis, analysis_id) if analysis_id else None
    if analysis is None or not may_read(analysis.file_id, request.args.get("file_id")):
        return None
    return analysis


@bp.post("/comments/")
def add_comment():
    if bearer_given():
        require_bearer()
    body = json_body()
    author = body.get("author", "User")
    if not bearer_ok():
        if author == Comment.AI:  # the analyzer without its token: 401, not a CSRF complaint
            raise RequestError(401, "AI comments need the analyzer token (Authorization: Bearer …)")
        csrf.protect()
    if author not in (Comment.USER, Comment.AI):
        raise RequestError(400, "author must be User or AI")
    if body.get("file_id") is not None and not isinstance(body["file_id"], str):
        raise RequestError(400, "file_id must be text")
    analysis = findings.analysis_named_by(body)
    if not bearer_ok() and not shows_file_id(analysis.file_id, body.get("file_id")):
        raise RequestError(404, "no such analysis")  # the browser proves it knows the file
    comment = findings.add_comment(analysis, body, author)
    return jsonify(findings.comment_json(comment)), 201


@bp.get("/comments/")
def list_comments():
    analysis = _analysis_for_reading()
    if analysis is None:
        return jsonify(error="no such analysis"), 404
    return jsonify(findings.comments_of(analysis))


@bp.post("/recommend/")
def recommend():
    require_bearer()
    body = json_body()
    recommendation, created = findings.recommend(findings.analysis_named_by(body), body)
    return jsonify(findings.recommendation_json(recommendation)), 201 if created else 200


@bp.get("/recommend/")
def show_recommendation():
    analysis = _analysis_for_reading()
    if analysis is None:
        return jsonify(error="no such analysis"), 404
    recommendation = db.session.query(Recommendation).filter_by(analysis_id=analysis.id).one_or_none()
    if recommendation is None:
        return jsonify(error="no recommendation yet"), 404
    return jsonify(findings.recommendation_json(recommendation))


@bp.get("/results/<key>/")
def result_file(key: str):
    analysis = findings.find_result(key)
    if analysis is None:
        return jsonify(error="no such result"), 404
    settings = current_app.config["SETTINGS"]
    response = send_file(findings.result_path(settings, analysis), mimetype=analysis.result_content_type,
                         conditional=True, etag=analysis.result_sha256, max_age=0)
    response.headers["Content-Disposition"] = content_disposition(analysis.result_filename)
    response.headers["Cache-Control"] = "private, no-store"
    return response
