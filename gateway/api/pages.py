"""The uploader's page (`/`) and tus-js-client, served from the project's own node_modules (installed by
`make run`): nothing comes from a CDN, the gateway works offline. (The CMS serves Chart.js and the docs serve
ReDoc the same way, each beside its page.)"""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, send_file

from ..config import PROJECT_ROOT
from ..models import Analysis

bp = Blueprint("pages", __name__)

VENDOR_FILES = {
    "tus.min.js": "tus-js-client/dist/tus.min.js",
}


@bp.get("/")
def uploader():
    return render_template("index.html", audiences=Analysis.AUDIENCES)


@bp.get("/vendor/<name>")
def vendor(name: str):
    relative = VENDOR_FILES.get(name)
    if relative is None:
        return jsonify(error="no such asset"), 404
    path = PROJECT_ROOT / "node_modules" / relative
    if not path.is_file():
        return jsonify(error=f"{relative} is not installed: run `make run` (it runs npm install)"), 503
    return send_file(path, mimetype="text/javascript", max_age=3600)
