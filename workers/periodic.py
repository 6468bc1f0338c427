"""Periodic jobs without a separate clock process.

Every scheduler worker runs a `Ticker`. Each period, a Redis key set with NX and a TTL of one period elects the
one ticker that enqueues the job, and a second key marks it busy until the job ends, so a slow run is never
stacked with more of the same. Nothing is kept that a Redis restart (or FLUSHALL) could lose for good: the
next tick simply enqueues again, and the jobs read their work from the database.
"""
from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass

from flask import current_app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str
    every: float
    job: str  # "module.function", run inside the worker's app context

    @property
    def timeout(self) -> int:
        return max(60, int(self.every * 10))

    @property
    def busy_ms(self) -> int:
        """How long a run may hold off the next. Short: a worker killed mid-run must not stall the beat, and a
        second run overlapping a slow one is harmless (the jobs are idempotent)."""
        return int(max(2.0, self.every * 4) * 1000)


def _busy_key(name: str) -> str:
    return f"periodic:{name}:busy"


def run_periodic(name: str, job: str):
    """The job RQ runs: the periodic function, then its busy mark is lifted."""
    module, _, function = job.rpartition(".")
    try:
        return getattr(importlib.import_module(module), function)()
    finally:
        current_app.extensions["redis"].delete(_busy_key(name))


class Ticker(threading.Thread):
    def __init__(self, redis, queue, schedule: list[Periodic], resolution: float = 0.1):
        super().__init__(name="periodic-ticker", daemon=True)
        self.redis = redis
        self.queue = queue
        self.schedule = schedule
        self.resolution = resolution
        self.stopped = threading.Event()

    def tick(self) -> None:
        for periodic in self.schedule:
            if self.redis.exists(_busy_key(periodic.name)):
                continue
            if self.redis.set(f"periodic:{periodic.name}", "1", nx=True, px=max(1, int(periodic.every * 1000))):
                self.redis.set(_busy_key(periodic.name), "1", px=periodic.busy_ms)
                self.queue.enqueue(run_periodic, periodic.name, periodic.job, job_timeout=periodic.timeout,
                                   result_ttl=0)

    def run(self) -> None:
        # A worker killed mid-run left its busy marks behind; at worst clearing them overlaps one run.
        try:
            self.redis.delete(*[_busy_key(periodic.name) for periodic in self.schedule])
        except Exception:
            log.warning("could not clear busy marks", exc_info=True)
        while not self.stopped.wait(self.resolution):
            try:
                self.tick()
            except Exception:  # Redis away for a moment: try again next tick
                log.warning("periodic tick failed", exc_info=True)
