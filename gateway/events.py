"""Each file's event stream: a Redis Stream (`events:file:<file_id>`) that is published to, replayed, and fanned
out to the browsers watching it.

Publishing is an XADD capped at about `KEEP` entries, so `Last-Event-ID` can replay at least the last 1000
events. Live delivery goes through one `EventHub` per process: a single reader (one Redis connection) that
XREADs every stream somebody in this process watches and hands each entry to those watchers' queues. An open
event stream therefore costs a queue, not a Redis connection; when its client leaves, it unsubscribes.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEEP = 2000
QUEUE_LIMIT = 1000


def stream_key(file_id: str) -> str:
    return f"events:file:{file_id}"


def publish(redis, file_id: str, event_type: str, data: dict) -> str | None:
    """Add an event; returns its id. An unreachable Redis loses the event, never the caller's transition."""
    try:
        entry_id = redis.xadd(stream_key(file_id), {"type": event_type, "data": json.dumps(data)},
                              maxlen=KEEP, approximate=True)
    except RedisError:
        log.warning("event %s for file %s not published: Redis unreachable", event_type, file_id[:8])
        return None
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def after_commit(file_id: str, event_type: str, data: dict) -> None:
    """Publish once the current database transaction commits."""
    from flask import current_app

    from .extensions import on_commit

    redis = current_app.extensions["redis"]
    on_commit(lambda: publish(redis, file_id, event_type, data))


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    data: str  # JSON text

    @cached_property
    def wire(self) -> bytes:
        """The event as sent; built once, however many streams it goes to."""
        head = f"id: {self.id}\n" if self.id else ""  # no id: the client keeps its Last-Event-ID
        return f"{head}event: {self.type}\ndata: {self.data}\n\n".encode()

    @classmethod
    def from_entry(cls, entry_id, fields) -> "Event":
        decode = (lambda v: v.decode()) if isinstance(entry_id, bytes) else (lambda v: v)
        fields = {decode(k): decode(v) for k, v in fields.items()}
        return cls(decode(entry_id), fields.get("type", "message"), fields.get("data", "{}"))


def _id_tuple(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def valid_event_id(text: str | None) -> str | None:
    if not text:
        return None
    try:
        _id_tuple(text.strip())
    except ValueError:
        return None
    return text.strip()


def tip(redis, file_id: str) -> str:
    """The id of the newest event of the file, or "0-0"."""
    newest = redis.xrevrange(stream_key(file_id), count=1)
    return Event.from_entry(*newest[0]).id if newest else "0-0"


def replay(redis, file_id: str, after: str) -> list[Event]:
    return [Event.from_entry(entry_id, fields)
            for entry_id, fields in redis.xrange(stream_key(file_id), min="(" + after, max="+")]


@dataclass(eq=False)
class Subscription:
    file_id: str
    events: queue.Queue = field(default_factory=lambda: queue.Queue(QUEUE_LIMIT))
    overflowed: bool = False


class EventHub:
    """One reader per process for all watched streams. Started lazily by the first subscriber."""

    def __init__(self, redis):
        self.redis = redis
        self._subscribers: dict[str, set[Subscription]] = {}
        self._positions: dict[str, str] = {}
        self._mutex = threading.Lock()
        self._wake_key = f"events:wake:{os.getpid()}:{secrets.token_hex(4)}"
        self._wake_position = "0-0"
        self._reader: threading.Thread | None = None
        self._gauge_key = f"metrics:streams:{os.getpid()}"

    def _report(self) -> None:
        """Open streams of this process, for /metrics; the key dies with the process (TTL)."""
        try:
            self.redis.set(self._gauge_key, self.open_streams, ex=30)
        except RedisError:
            pass

    @property
    def open_streams(self) -> int:
        with self._mutex:
            return sum(len(subs) for subs in self._subscribers.values())

    def subscribe(self, file_id: str) -> Subscription:
        subscription = Subscription(file_id)
        with self._mutex:
            watchers = self._subscribers.setdefault(file_id, set())
            if not watchers:
                self._positions[file_id] = tip(self.redis, file_id)
            watchers.add(subscription)
            if self._reader is None or not self._reader.is_alive():
                self._reader = threading.Thread(target=self._run, name="event-hub", daemon=True)
                self._reader.start()
        self._wake()
        self._report()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._mutex:
            watchers = self._subscribers.get(subscription.file_id)
            if watchers is not None:
                watchers.discard(subscription)
                if not watchers:
                    del self._subscribers[subscription.file_id]
                    self._positions.pop(subscription.file_id, None)
        self._report()

    def _wake(self) -> None:
        try:
            self.redis.xadd(self._wake_key, {"w": "1"}, maxlen=10, approximate=False)
            self.redis.expire(self._wake_key, 3600)
        except RedisError:
            pass

    def _run(self) -> None:
        while True:
            with self._mutex:
                if not self._subscribers:
                    self._reader = None
                    return
                streams = {stream_key(fid): pos for fid, pos in self._positions.items()}
            streams[self._wake_key] = self._wake_position
            self._report()
            try:
                batches = self.redis.xread(streams, block=5000, count=500)
            except RedisError:
                time.sleep(1.0)
                continue
            for key, entries in batches or []:
                key = key.decode() if isinstance(key, bytes) else key
                if key == self._wake_key:
                    self._wake_position = Event.from_entry(*entries[-1]).id
                    continue
                file_id = key[len("events:file:"):]
                events = [Event.from_entry(entry_id, fields) for entry_id, fields in entries]
                with self._mutex:
                    if file_id not in self._positions:
                        continue
                    self._positions[file_id] = events[-1].id
                    watchers = list(self._subscribers.get(file_id, ()))
                for subscription in watchers:
                    for event in events:
                        try:
                            subscription.events.put_nowait(event)
                        except queue.Full:  # a client that does not read: cut it; it resumes by Last-Event-ID
                            subscription.overflowed = True
                            break


def stream(hub: EventHub, file_id: str, snapshot, last_event_id: str | None, heartbeat: float):
    """The text/event-stream body: a snapshot, then what was missed, then live events, with heartbeats.

    `snapshot()` is called after subscribing, so nothing that happens while it is read can be missed (at worst
    an event repeats what the snapshot already shows). A fresh client gets the snapshot under the stream's
    newest id; a returning one gets it without an id, so its Last-Event-ID still points at what it last saw.
    """
    subscription = hub.subscribe(file_id)
    try:
        yield b"retry: 2000\n\n"
        newest = tip(hub.redis, file_id)
        yield Event("" if last_event_id else newest, "snapshot", json.dumps(snapshot())).wire
        delivered = last_event_id or newest
        if last_event_id:
            for event in replay(hub.redis, file_id, last_event_id):
                yield event.wire
                delivered = event.id
        while not subscription.overflowed:
            try:
                event = subscription.events.get(timeout=heartbeat)
            except queue.Empty:
                yield b": keep-alive\n\n"
                continue
            if _id_tuple(event.id) > _id_tuple(delivered):
                delivered = event.id
                yield event.wire
    finally:
        hub.unsubscribe(subscription)
