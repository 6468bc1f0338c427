"""`python -m workers`: an RQ worker with its scheduler, inside the app context, plus the periodic ticker.

A SimpleWorker (no fork per job): jobs are short database and HTTP calls, and a fork per job would cost more
than the job and break the inherited database connections.
"""
import logging
import os

from rq import Queue, SimpleWorker

from gateway import create_app
from workers import jobs
from workers.periodic import Periodic, Ticker

QUEUES = ("default",)


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app()
    settings = app.config["SETTINGS"]
    redis = app.extensions["redis"]
    with app.app_context():
        queues = [Queue(name, connection=redis) for name in QUEUES]
        sweep_every = min(300.0, max(1.0, settings.upload_expiration_seconds / 4))
        ticker = Ticker(redis, queues[0], [Periodic("expire_uploads", sweep_every, jobs.expire_uploads)])
        ticker.start()
        worker = SimpleWorker(queues, connection=redis)
        try:
            worker.work(with_scheduler=True)
        finally:
            ticker.stopped.set()


if __name__ == "__main__":
    main()
