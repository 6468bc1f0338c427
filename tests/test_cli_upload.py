"""The terminal client: upload, watch, summary; a Ctrl-C in the middle resumes where it stopped."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from conftest import ROOT, TUS, wait_until

FIXTURES = Path(__file__).parent / "fixtures" / "scripts"
ENV = dict(REFER_ROTATION_SECONDS=30, REFER_LIFETIME_SECONDS=120, REFER_GRACE_SECONDS=5,
           REFER_FROZEN_TTL_SECONDS=120)


def cli(server, *args, cache, **popen):
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    return subprocess.Popen([sys.executable, "-m", "gateway", "upload", *args, "--server", server.url], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_upload_watch_and_summary(server_factory, worker_factory, loaded_catalog, tmp_path):
    server = server_factory(**ENV)
    worker_factory(**ENV, PUBLIC_URL=server.url)
    name = "mixed_en.txt"
    want = json.loads((FIXTURES / "expected.json").read_text())[name]
    run = cli(server, str(FIXTURES / name), "--target", "12+", "--title", "CLI", "--watch", cache=tmp_path)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert "status: processing" in out and "status: db_ready" in out
    assert f"suggested rating: {want['rating']}" in out
    for code in want["categories"]:
        assert loaded_catalog[code].name in out
    assert "report: " + server.url + "/results/" in out


def test_ctrl_c_then_resume(server_factory, tmp_path, app):
    from gateway.models import Analysis, File
    server = server_factory()
    big = tmp_path / "long-script.txt"
    big.write_bytes(os.urandom(40 * 1024 * 1024))
    from gateway.extensions import db
    first = cli(server, str(big), "--target", "16+", "--chunk-size", str(256 * 1024), cache=tmp_path)

    def some_bytes_in():
        db.session.remove()
        return File.query.filter(File.offset > 0).count()

    wait_until(some_bytes_in, timeout=60, message="the first chunks")  # then Ctrl-C
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=30)
    assert first.returncode == 130 and "run the same command again to resume" in err
    url = server.url + "/files/" + File.query.first().id + "/"
    interrupted_at = int(requests.head(url, headers=TUS).headers["Upload-Offset"])
    assert interrupted_at < big.stat().st_size

    second = cli(server, str(big), "--target", "16+", cache=tmp_path)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "resuming at" in err
    db.session.remove()
    assert File.query.count() == 1 and File.query.first().state == "complete"
    assert Analysis.query.count() == 1, "the analysis was asked for once"
