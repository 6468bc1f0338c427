"""The analysts' side of the gateway: login (`/login/`, `/logout/`), the flask-admin panel (`/admin/`) and the
dashboard (`/cms/`). `init_app(app)` registers all of it; `create_app()` calls it last."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import auth, cms, views

    # The session cookie (login, CSRF) is not sent on cross-site subrequests or POSTs.
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.jinja_env.globals["admin_current_user"] = auth.current_user
    app.register_blueprint(auth.bp)
    app.register_blueprint(cms.bp)
    app.extensions["admin_panel"] = views.build(app)
