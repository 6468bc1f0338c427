"""`/download/<refer>/`: the file, for whoever holds a live refer key. The seed's address doubles as the
file's event stream when the client asks for `text/event-stream` by name (what EventSource sends)."""
from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, current_app, jsonify, request, send_file
from werkzeug.http import parse_options_header

from .. import findings, refer
from . import events as events_api
from .auth import require_bearer

bp = Blueprint("download", __name__)


def content_disposition(filename: str) -> str:
    """RFC 6266: a quoted ASCII fallback and the exact UTF-8 name."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def asks_for_event_stream() -> bool:
    return any(mime == "text/event-stream" and quality > 0 for mime, quality in request.accept_mimetypes)


@bp.route("/download/<token>/", methods=["GET", "HEAD"])
def download(token: str):
    if request.method == "GET" and asks_for_event_stream():
        return events_api.respond(token)
    settings = current_app.config["SETTINGS"]
    try:
        found = refer.resolve(token)
    except refer.ReferError as error:
        return jsonify(error=error.message), error.status
    file, analysis = found.file, found.analysis
    response = send_file(current_app.extensions["tus"].store.data_path(file.id), mimetype=file.content_type,
                         conditional=True, etag=file.sha256, max_age=0, as_attachment=True,
                         download_name=file.filename)
    if request.method == "GET" and response.status_code in (200, 206):
        try:
            refer.freeze(settings, token)  # the first download freezes the key, before a byte is sent
        except refer.ReferError as error:
            response.close()
            return jsonify(error=error.message), error.status
    response.headers["Content-Disposition"] = content_disposition(file.filename)
    response.headers["X-Analysis-Id"] = str(analysis.id)
    response.headers["X-File-Target-Audience"] = analysis.target_audience or ""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/download/<token>/")
def upload_result(token: str):
    """The analyzer's result file: multipart field `file`, or the raw body with its Content-Type."""
    require_bearer()
    settings = current_app.config["SETTINGS"]
    try:
        analysis = refer.resolve(token).analysis
    except refer.ReferError as error:
        return jsonify(error=error.message), error.status
    limit = settings.upload_max_size
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        return jsonify(error=f"the result file is larger than {limit} bytes"), 413
    if request.mimetype == "multipart/form-data":
        part = request.files.get("file")
        if part is None:
            return jsonify(error="send the result as the multipart field 'file' (or as the raw body)"), 400
        source, filename, content_type = part.stream, part.filename or "", part.mimetype
    else:
        _, options = parse_options_header(request.headers.get("Content-Disposition", ""))
        source, filename, content_type = request.stream, options.get("filename", ""), request.mimetype
    findings.store_result(settings, analysis, source, filename, content_type, limit)
    return jsonify(analysis_id=analysis.id, status=analysis.status,
                   result_url=findings.result_url(settings, analysis)), 201
