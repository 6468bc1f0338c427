"""Cross-cutting HTTP behaviour: CORS for browsers, and X-HTTP-Method-Override for clients behind old proxies."""
from __future__ import annotations

from flask import Flask, jsonify, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .fields import RequestError

EXPOSED_HEADERS = ("Location, Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata, Upload-Defer-Length, "
                   "Upload-Concat, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, "
                   "Content-Disposition, X-Analysis-Id, X-File-Target-Audience, ETag")
ALLOWED_METHODS = "GET, HEAD, POST, PATCH, DELETE, OPTIONS"
_OVERRIDABLE = {"PATCH", "DELETE", "HEAD", "GET", "PUT", "OPTIONS"}


class MethodOverride:
    """Honour `X-HTTP-Method-Override` on POST (tus 1.0.0 asks servers to)."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        override = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").strip().upper()
        if environ.get("REQUEST_METHOD") == "POST" and override in _OVERRIDABLE:
            environ["REQUEST_METHOD"] = override
        return self.wsgi_app(environ, start_response)


def install_cors(app: Flask, origins: tuple[str, ...]) -> None:
    allow_any = "*" in origins

    def allowed(origin: str | None) -> str | None:
        if not origin:
            return None
        return "*" if allow_any else (origin if origin in origins else None)

    @app.before_request
    def answer_preflight():
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = app.make_response(("", 204))
            origin = allowed(request.headers.get("Origin"))
            if origin:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
                requested = request.headers.get("Access-Control-Request-Headers")
                if requested:
                    response.headers["Access-Control-Allow-Headers"] = requested
                response.headers["Access-Control-Max-Age"] = "86400"
            response.headers["Vary"] = "Origin"
            return response
        return None

    @app.after_request
    def add_cors_headers(response):
        origin = allowed(request.headers.get("Origin"))
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            if origin != "*":
                response.headers.add("Vary", "Origin")
        return response


def install_error_pages(app: Flask) -> None:
    """Errors of the JSON API answer in JSON, saying what was wrong (the tus routes answer in text themselves)."""

    @app.errorhandler(RequestError)
    def request_refused(error: RequestError):
        return jsonify(error=error.message), error.status, error.headers

    @app.errorhandler(CSRFError)
    def csrf_refused(error: CSRFError):
        return jsonify(error=f"CSRF check failed: {error.description} (send X-CSRFToken from GET /csrftoken/)"), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.response is not None:  # abort(response): already says what it means
            return error.response
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]  # e.g. Allow on 405
        return jsonify(error=error.description or error.name), error.code, headers
