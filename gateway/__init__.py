"""The gateway's Flask application: `create_app()` wires settings, services, blueprints and upload hooks."""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import PROJECT_ROOT, Settings
from .events import EventHub
from .extensions import connect_redis, csrf, db, migrate, start_embedded_redis
from .http import MethodOverride, install_cors, install_error_pages


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session instead: an upload page left open for hours still works
    )
    db.init_app(app)
    csrf.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))

    redis_url = settings.redis_url or start_embedded_redis(settings.embedded_redis_path)
    app.extensions["redis"] = connect_redis(redis_url)
    # Its own pool: the hub's blocking read holds one connection for all of this process's event streams.
    app.extensions["event_hub"] = EventHub(connect_redis(redis_url))

    from .api import cinema, download, events, findings, health, pages, tus, violations
    for blueprint in (health.bp, tus.bp, cinema.bp, download.bp, events.bp, findings.bp, violations.bp, pages.bp):
        app.register_blueprint(blueprint)
    tus.init_app(app)

    install_cors(app, settings.cors_origins)
    install_error_pages(app)
    app.wsgi_app = MethodOverride(app.wsgi_app)
    if settings.trust_proxy:
        hops = settings.trust_proxy
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)
    from .cli import register as register_cli
    register_cli(app)
    from admin import init_app as init_admin
    init_admin(app)
    from .api import docs
    docs.init_app(app)
    return app
