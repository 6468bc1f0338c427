"""`/download/<refer>/`: the file, for whoever holds a live refer key. The seed's address doubles as the
file's event stream when the client asks for `text/event-stream` by name (what EventSource sends)."""
from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, current_app, jsonify, request, send_file

from .. import refer
from . import events as events_api

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
