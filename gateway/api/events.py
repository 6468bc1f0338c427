"""`/events/<file_id>/`: the file's Server-Sent Events stream. The file ID is the capability."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from .. import analyses, events
from ..extensions import db
from ..models import File
from ..tus.handler import UPLOAD_ID

bp = Blueprint("events", __name__)


def respond(file_id: str):
    if not UPLOAD_ID.match(file_id) or db.session.get(File, file_id) is None:
        return jsonify(error="no such file"), 404
    app = current_app._get_current_object()

    def snapshot() -> dict:
        with app.app_context():  # the body is streamed after the request's own context has ended
            return analyses.snapshot(file_id)

    last_event_id = events.valid_event_id(request.headers.get("Last-Event-ID"))
    body = events.stream(app.extensions["event_hub"], file_id, snapshot, last_event_id,
                         heartbeat=app.config["SETTINGS"].sse_heartbeat_seconds)
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@bp.get("/events/<file_id>/")
def file_events(file_id: str):
    return respond(file_id)
