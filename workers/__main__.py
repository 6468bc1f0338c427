"""`python -m workers`: the Procfile's worker. A small supervisor over three RQ workers, one per kind of work,
so that a slow analyzer or an unreachable webhook never delays a key rotation:

- `scheduler`: queues `refer` and `default`, with RQ's scheduler and the periodic ticker (refer sweep, upload
  expiry);
- `handoff`: deliveries to the analyzer;
- `analyzer`: the built-in analyzer (which loads its scene model, or fits it the first time, before it takes
  jobs; see workers/classifier.py).

Each is a `SimpleWorker` (no fork per job: jobs are short database and HTTP calls, and a fork per job would
cost more than the job and break inherited database connections) running in its own process. A child that
dies is started again; SIGTERM or SIGINT stops them all.
"""
import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from gateway.launcher import stop_signals

ROLES = {
    "scheduler": ("refer", "default"),
    "handoff": ("handoff",),
    "analyzer": ("analyzer",),
}


def run_role(role: str) -> None:
    from rq import Queue, SimpleWorker

    from gateway import create_app
    from workers.periodic import Periodic, Ticker

    app = create_app()
    settings = app.config["SETTINGS"]
    redis = app.extensions["redis"]
    with app.app_context():
        queues = [Queue(name, connection=redis) for name in ROLES[role]]
        ticker = None
        if role == "scheduler":
            sweep_every = min(0.25, max(0.1, settings.refer_rotation_seconds / 8))
            expire_every = min(300.0, max(1.0, settings.upload_expiration_seconds / 4))
            ticker = Ticker(redis, queues[0], [
                Periodic("refer_sweep", sweep_every, "workers.jobs.sweep_refer_sessions"),
                Periodic("handoffs", sweep_every, "workers.jobs.queue_due_handoffs"),
                Periodic("expire_uploads", expire_every, "workers.jobs.expire_uploads"),
            ])
            ticker.start()
        if role == "analyzer" and not settings.analyzer_url:
            from workers.classifier import model
            model(settings.analyzer_cache_dir)  # fit or load it now, not inside the first analysis
        worker = SimpleWorker(queues, connection=redis, name=f"{role}-{os.getpid()}")
        try:
            worker.work(with_scheduler=role == "scheduler", logging_level=os.environ.get("LOG_LEVEL", "INFO"))
        finally:
            if ticker:
                ticker.stopped.set()


def supervise() -> int:
    children: dict[str, subprocess.Popen] = {}
    stopping = stop_signals()

    def start(role: str) -> None:
        children[role] = subprocess.Popen([sys.executable, "-m", "workers", "--role", role])

    for role in ROLES:
        start(role)
    while not stopping.is_set():
        time.sleep(0.5)
        for role, child in list(children.items()):
            if child.poll() is not None and not stopping.is_set():
                logging.warning("worker %s exited with %s; starting it again", role, child.returncode)
                time.sleep(1.0)
                start(role)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return 0


def main() -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m workers")
    parser.add_argument("--role", choices=sorted(ROLES), help="run one worker instead of the supervisor")
    args = parser.parse_args()
    if args.role:
        run_role(args.role)
        return 0
    return supervise()


if __name__ == "__main__":
    sys.exit(main())
