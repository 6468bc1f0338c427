"""gunicorn settings for the web process (Procfile `web`). HOST/PORT/WEB_CONCURRENCY come from the environment.

gevent workers: an event stream or a slow far-away upload holds a connection for minutes while costing only a
greenlet, so hundreds of them do not starve the rest.
"""
import os
import re

from gunicorn.glogging import Logger

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = 2000
# SIGTERM: stop accepting, give requests in flight this long, then exit. Upload bodies still arriving are cut
# after SAVE_WINDOW so that each saves what it received before the worker goes.
graceful_timeout = 5
SAVE_WINDOW = 3.0
timeout = 60
keepalive = 75
# Uploads can be large; the app streams bodies itself and nginx (deploy/) enforces the body limit.
limit_request_line = 8190
# Proxy headers are the app's business (TRUST_PROXY, ProxyFix): gunicorn must not act on them by itself.
secure_scheme_headers = {}
forwarded_allow_ips = ""
# The shared per-user control socket would make two gateways on one machine fight over it.
control_socket_disable = True
accesslog = os.environ.get("ACCESS_LOG", "-")


class RedactingLogger(Logger):
    """Refer keys (and file IDs given as query parameters) are credentials: never in the access log."""
    SECRET = re.compile(r"(/download/)[^/?\s]+|(file_id=)[^&\s]+")

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "U", "q"):
            if isinstance(atoms.get(name), str):
                atoms[name] = self.SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "…", atoms[name])
        return atoms


logger_class = RedactingLogger
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'


def post_fork(server, worker):
    # Let PostgreSQL queries yield to other greenlets instead of blocking the whole worker.
    from psycogreen.gevent import patch_psycopg
    patch_psycopg()
    # glibc serves 1 MiB buffers with mmap and returns them at once, so every upload chunk cost ~256 page
    # faults; keeping buffers up to 64 MiB in the heap (and trimming only past 128 MiB) removes that cost.
    _use_cooperative_sendfile()
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: keep its defaults


def post_worker_init(worker):
    import signal

    import gevent

    handle_exit = worker.handle_exit

    def on_sigterm(signum, frame):
        handle_exit(signum, frame)
        from gateway.api.tus import cut_bodies_in_flight
        gevent.spawn_later(SAVE_WINDOW, cut_bodies_in_flight)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn's own handler: never interrupt a request's I/O


def _use_cooperative_sendfile():
    """Downloads through the kernel's sendfile. gevent's sockets give up on os.sendfile ("not cooperative") and
    copy files through Python 8 KiB at a time, which cost the download fan-out two thirds of its speed. On the
    non-blocking socket, os.sendfile is cooperative once EAGAIN waits on the event loop."""
    import os

    from gevent import _socket3
    from gevent.socket import wait_write

    def sendfile(sock, file, offset=0, count=None):
        sock._check_sendfile_params(file, offset, count)
        source = file.fileno()
        remaining = count if count else os.fstat(source).st_size - offset
        sent_total = 0
        while remaining > 0:
            try:
                sent = os.sendfile(sock.fileno(), source, offset + sent_total, min(remaining, 1 << 30))
            except BlockingIOError:
                wait_write(sock.fileno())
                continue
            if sent == 0:
                break
            sent_total += sent
            remaining -= sent
        file.seek(offset + sent_total)
        return sent_total

    _socket3.socket.sendfile = sendfile
