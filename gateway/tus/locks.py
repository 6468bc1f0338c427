"""One request at a time per upload, across processes and machines, with take-over of a stale holder.

A holder keeps a Redis key alive while it works. A newcomer that finds the key taken does not queue behind it:
it raises a stop flag and polls. The holder's watchdog sees the flag within a fraction of a second and calls the
holder's `on_stop` (for a PATCH: shut the socket's read side, so a read blocked on a half-dead connection
returns at once with what arrived); the holder saves what it has and releases. If the holder is gone for good
(its process was killed), its key runs out after `ttl` seconds and the newcomer takes it. Only when neither
happens within `wait` seconds does the newcomer give up (423).

The watchdog also notices a lost key (another process took over after the TTL ran out); the holder checks
`HeldLock.lost` before each write, so a zombie cannot keep appending behind the new holder's back.
"""
from __future__ import annotations

import secrets
import threading
import time
from contextlib import contextmanager
from typing import Callable

from redis.exceptions import RedisError

from .errors import Locked, Unavailable

# KEYS[1] lock, KEYS[2] stop flag; ARGV[1] token, ARGV[2] ttl ms.
# Returns 0 when the lock is no longer ours, 2 when someone asked us to stop, 1 otherwise (and extends it).
_RENEW = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('pexpire', KEYS[1], ARGV[2])
if redis.call('exists', KEYS[2]) == 1 then return 2 end
return 1
"""
# KEYS[1] lock, KEYS[2] stop flag; ARGV[1] token, ARGV[2] ttl ms. Take the lock if free, clearing the flag
# that was raised to free it.
_ACQUIRE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('del', KEYS[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class HeldLock:
    def __init__(self):
        self.stop_requested = threading.Event()
        self.lost = False

    @property
    def should_stop(self) -> bool:
        return self.stop_requested.is_set()


class RedisLocker:
    def __init__(self, redis, prefix: str = "tus:lock:", ttl: float = 3.0, wait: float = 5.0,
                 watch_every: float = 0.25, on_event: Callable[[str], None] | None = None):
        self.redis = redis
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000)
        self.wait = wait
        self.watch_every = watch_every
        self.on_event = on_event or (lambda kind: None)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _keys(self, name: str) -> list[str]:
        return [self.prefix + name, self.prefix + name + ":stop"]

    @contextmanager
    def lock(self, name: str, on_stop: Callable[[], None] = lambda: None):
        keys = self._keys(name)
        token = secrets.token_hex(16)
        try:
            self._take(keys, token)
        except RedisError as error:
            raise Unavailable(f"uploads are paused: the lock service is unreachable ({error.__class__.__name__}); "
                              f"retry shortly", headers={"Retry-After": "5"}) from error
        held = HeldLock()
        finished = threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(keys, token, held, finished, on_stop),
                                    name=f"tus-lock-{name[:8]}", daemon=True)
        watchdog.start()
        try:
            yield held
        finally:
            finished.set()
            watchdog.join()
            try:
                self._release(keys=keys[:1], args=[token])
            except RedisError:
                pass  # the key runs out by itself within its TTL

    def _take(self, keys: list[str], token: str) -> None:
        deadline = time.monotonic() + self.wait
        asked = False
        while True:
            if self._acquire(keys=keys, args=[token, self.ttl_ms]):
                if asked:
                    self.on_event("takeover")
                return
            if time.monotonic() >= deadline:
                self.on_event("refused")
                raise Locked("another request for this upload is in progress and could not be stopped; "
                             "retry in a few seconds")
            # Ask the holder to stop; the flag lives as long as a lock would, so a dead holder leaves no litter.
            self.redis.set(keys[1], token, px=self.ttl_ms)
            asked = True
            time.sleep(0.05)

    def _watch(self, keys, token, held: HeldLock, finished: threading.Event, on_stop) -> None:
        while not finished.wait(self.watch_every):
            try:
                state = self._renew(keys=keys, args=[token, self.ttl_ms])
            except Exception:  # Redis hiccup: keep working; the next beat retries before the TTL runs out
                continue
            if state == 1:
                continue
            held.lost = state == 0
            held.stop_requested.set()
            on_stop()
            return
