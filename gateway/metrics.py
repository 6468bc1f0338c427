"""Prometheus metrics. Counters live in one Redis hash, so every web process and worker adds to the same ones."""
from __future__ import annotations

from sqlalchemy import func

from .extensions import db

_HASH = "metrics:counters"
COUNTERS = {
    "upload_bytes_received_total": "Bytes of upload bodies received",
    "upload_lock_takeovers_total": "Stale upload requests stopped so a newer one could proceed",
    "upload_lock_refused_total": "Upload requests answered 423 because the lock could not be taken over",
    "refer_rotations_total": "Refer keys replaced by rotation",
    "handoff_attempts_total": "Hand-off POSTs to the analyzer",
    "handoff_failures_total": "Hand-off POSTs that failed",
}


def count(redis, name: str, amount: int = 1) -> None:
    redis.hincrby(_HASH, name, amount)


def render(redis) -> str:
    from .models import File

    values = {key.decode(): int(value) for key, value in redis.hgetall(_HASH).items()}
    lines = []
    for name, help_text in COUNTERS.items():
        lines += [f"# HELP gateway_{name} {help_text}", f"# TYPE gateway_{name} counter",
                  f"gateway_{name} {values.get(name, 0)}"]
    streams = sum(int(redis.get(key) or 0) for key in redis.scan_iter("metrics:streams:*"))
    lines += ["# HELP gateway_event_streams_open Event streams open, all web processes",
              "# TYPE gateway_event_streams_open gauge", f"gateway_event_streams_open {streams}"]
    by_state = dict(db.session.query(File.state, func.count()).group_by(File.state).all())
    lines += ["# HELP gateway_uploads Uploads by state", "# TYPE gateway_uploads gauge"]
    for state in (File.UPLOADING, File.COMPLETE, File.TERMINATED, File.EXPIRED):
        lines.append(f'gateway_uploads{{state="{state}"}} {by_state.get(state, 0)}')
    return "\n".join(lines) + "\n"
