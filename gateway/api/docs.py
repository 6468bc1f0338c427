"""API documentation: `/swagger/` (flasgger's Swagger UI), `/redoc/` (ReDoc), `/swagger.json`, `/swagger.yaml`.

One source: `openapi.yaml` beside this file (OpenAPI 3.0.3), loaded by flasgger as its template; no view
docstring is read. The served spec gets `servers` from the request (or `PUBLIC_URL`), so "Try it out", Postman
and generated clients talk to the gateway the reader reached, proxy prefix included.

Everything is served from this machine: Swagger UI from flasgger's own static files (its page template is
overridden to drop the web-font link it ships with), ReDoc from the `redoc` npm package in `node_modules/`
(`make run` installs it). The pages carry a Content-Security-Policy that lets the browser load nothing from
another host.
"""
from __future__ import annotations

import copy
from functools import wraps
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from flasgger import Swagger
from flask import Blueprint, Flask, Response, current_app, render_template_string, request, send_file
from jinja2 import ChoiceLoader, DictLoader

from ..config import PROJECT_ROOT

SPEC_FILE = Path(__file__).with_name("openapi.yaml")
REDOC_BUNDLE = PROJECT_ROOT / "node_modules" / "redoc" / "bundles" / "redoc.standalone.js"
SPEC_ENDPOINT = "openapi"  # flasgger's endpoint `flasgger.openapi`, at /swagger.json

bp = Blueprint("docs", __name__)

# flasgger's head.html without its web-font link (a CDN): Swagger UI's CSS falls back to local fonts.
_SWAGGER_HEAD = """<meta charset="UTF-8">
<title>{{ title }}</title>
<link rel="stylesheet" type="text/css" href="{{ swagger_ui_css }}">
<link rel="icon" type="image/png" href="{{ favicon }}" sizes="64x64 32x32 16x16" />
<style>
  html { box-sizing: border-box; overflow: -moz-scrollbars-vertical; overflow-y: scroll; }
  *, *:before, *:after { box-sizing: inherit; }
  body { margin: 0; background: #fafafa; }
</style>
"""

_REDOC_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{{ title }} — ReDoc</title>
  <link rel="icon" type="image/png" href="{{ url_for('flasgger.static', filename='favicon-32x32.png') }}">
  <style>body { margin: 0; padding: 0; }</style>
</head>
<body>
  <redoc spec-url="{{ url_for('flasgger.' + spec_endpoint) }}" expand-responses="200,201" required-props-first
         sort-props-alphabetically="false"></redoc>
  <script src="{{ url_for('docs.redoc_bundle') }}"></script>
</body>
</html>
"""

_MISSING_REDOC = ("ReDoc is not installed here: {path} is missing. Run `npm install` in the project directory "
                  "(`make run` and `make test` do it) to fetch the `redoc` package; /swagger/ works without it.\n")


def _content_security_policy(extra_connect: str = "") -> str:
    """Only this origin (plus, for "Try it out", the API's public origin): no CDN, no web fonts, no telemetry."""
    connect = f"'self' {extra_connect}".strip()
    return ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
            f"connect-src {connect}; object-src 'none'; base-uri 'self'; frame-ancestors 'self'")


def api_base_url() -> str:
    """Where clients reach the API: PUBLIC_URL when set, else the address of this request (proxy-aware)."""
    return current_app.config["SETTINGS"].public_url or request.url_root.rstrip("/")


def _public_origin() -> str:
    parts = urlsplit(api_base_url())
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def current_spec() -> dict:
    """The spec as served: the YAML file, with `servers` naming the API as this client reaches it."""
    spec = copy.deepcopy(current_app.extensions["flasgger"].get_apispecs(SPEC_ENDPOINT))
    spec["servers"] = [{"url": api_base_url(), "description": "This gateway"}]
    return spec


def spec_json():
    response = current_app.json.response(current_spec())
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/swagger.yaml")
def spec_yaml():
    text = yaml.safe_dump(current_spec(), sort_keys=False, allow_unicode=True, width=120)
    return Response(text, mimetype="application/yaml", headers={"Cache-Control": "no-cache",
                                                                "Content-Disposition": 'inline; filename="openapi.yaml"'})


@bp.get("/redoc/")
def redoc():
    if not REDOC_BUNDLE.is_file():
        return Response(_MISSING_REDOC.format(path=REDOC_BUNDLE), 503, mimetype="text/plain")
    html = render_template_string(_REDOC_PAGE, title=current_spec()["info"]["title"], spec_endpoint=SPEC_ENDPOINT)
    return Response(html, mimetype="text/html", headers={"Content-Security-Policy": _content_security_policy(),
                                                         "Cache-Control": "no-cache"})


@bp.get("/redoc/redoc.standalone.js")
def redoc_bundle():
    """The `redoc` npm package's standalone bundle, straight from node_modules."""
    if not REDOC_BUNDLE.is_file():
        return Response("/* " + _MISSING_REDOC.format(path=REDOC_BUNDLE).strip() + " */\n", 503,
                        mimetype="text/javascript")
    return send_file(REDOC_BUNDLE, mimetype="text/javascript", conditional=True, etag=True, max_age=3600)


def _with_csp(view):
    """flasgger's own views (the Swagger UI page) get the same no-foreign-host policy as /redoc/."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        response = current_app.make_response(view(*args, **kwargs))
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = _content_security_policy(_public_origin())
        return response

    return wrapped


def init_app(app: Flask) -> None:
    config = {
        "openapi": "3.0.3",
        "title": "Cinema upload gateway API",
        "headers": [],
        "specs": [{
            "endpoint": SPEC_ENDPOINT,
            "route": "/swagger.json",
            "rule_filter": lambda rule: False,  # the YAML file is the whole spec: no docstring is parsed
            "model_filter": lambda tag: False,
        }],
        "swagger_ui": True,
        "uiversion": 3,
        "specs_route": "/swagger/",
        "static_url_path": "/flasgger_static",
        "hide_top_bar": True,
        "auth": {},
        "ui_params": {"displayRequestDuration": True, "defaultModelsExpandDepth": 0},
    }
    swagger = Swagger(app, config=config, template_file=str(SPEC_FILE), decorators=[_with_csp])
    app.extensions["flasgger"] = swagger
    # Our answer at flasgger's route (which its UI points at): the same spec, with this request's `servers`.
    app.view_functions[f"flasgger.{SPEC_ENDPOINT}"] = spec_json
    flasgger_blueprint = app.blueprints["flasgger"]
    flasgger_blueprint.jinja_loader = ChoiceLoader([DictLoader({"flasgger/head.html": _SWAGGER_HEAD}),
                                                    flasgger_blueprint.jinja_loader])
    app.register_blueprint(bp)
