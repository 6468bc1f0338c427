"""Periodic jobs without a separate clock process.

Every worker runs a `Ticker`; a Redis key set with NX and a TTL of one period elects, each period, the one worker
that enqueues the job. Nothing is stored that a Redis restart (or FLUSHALL) could lose for good: the next tick
simply enqueues again.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str
    every: float
    job: Callable


class Ticker(threading.Thread):
    def __init__(self, redis, queue, schedule: list[Periodic], resolution: float = 1.0):
        super().__init__(name="periodic-ticker", daemon=True)
        self.redis = redis
        self.queue = queue
        self.schedule = schedule
        self.resolution = resolution
        self.stopped = threading.Event()

    def tick(self) -> None:
        for periodic in self.schedule:
            if self.redis.set(f"periodic:{periodic.name}", "1", nx=True, px=max(1, int(periodic.every * 1000))):
                self.queue.enqueue(periodic.job, job_timeout=max(60, int(periodic.every * 2)))

    def run(self) -> None:
        while not self.stopped.wait(self.resolution):
            try:
                self.tick()
            except Exception:  # Redis away for a moment: try again next tick
                log.warning("periodic tick failed", exc_info=True)
