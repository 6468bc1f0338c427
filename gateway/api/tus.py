"""`/files/`: the tus server's routes. All protocol work is in `gateway.tus`; this only adapts Flask to it."""
from __future__ import annotations

import io
import os
import socket
import weakref

from flask import Blueprint, Response, current_app, request
from gunicorn.http.body import Body as GunicornBody
from gunicorn.http.body import LengthReader
from gunicorn.http.errors import ParseException as FramingError
from gunicorn.http.unreader import SocketUnreader

from .. import uploads
from ..tus import DiskStore, RedisLocker, TusHandler, TusRequest

bp = Blueprint("tus", __name__)
_bodies_in_flight: "weakref.WeakSet[WsgiBody]" = weakref.WeakSet()


class WsgiBody:
    """The request body straight from the WSGI server, in large reads, with a way to unblock a stale one."""

    def __init__(self, environ):
        self._stream = environ["wsgi.input"]
        # gunicorn hands us the connection; shutting its read side down wakes a read blocked on a dead peer.
        self._socket = environ.get("gunicorn.socket") or environ.get("gunicorn.sock")
        self.broken = False
        self.malformed: str | None = None
        _bodies_in_flight.add(self)
        # A body of known length under gunicorn can be received straight into the caller's buffer: its
        # reader copies every byte through BytesIO buffers and fresh allocations, which costs more than the
        # disk write. Anything else (chunked bodies, other servers) goes through read().
        reader = getattr(self._stream, "reader", None)
        direct = (type(self._stream) is GunicornBody and type(reader) is LengthReader
                  and type(reader.unreader) is SocketUnreader and not self._stream.buf.getvalue())
        self._length_reader = reader if direct else None

    @property
    def can_readinto(self) -> bool:
        return self._length_reader is not None

    def readinto(self, view: memoryview) -> int:
        """Fill `view` from the body; fewer bytes only at the body's end or when the connection ends."""
        reader = self._length_reader
        filled = 0
        want = min(len(view), reader.length)
        unreader = reader.unreader
        buffered = unreader.buf.getvalue()  # what gunicorn read past the headers
        if buffered and want:
            taken = min(want, len(buffered))
            view[:taken] = buffered[:taken]
            unreader.buf = io.BytesIO()
            unreader.buf.write(buffered[taken:])
            filled = taken
        while filled < want and not self.broken:
            try:
                count = unreader.sock.recv_into(view[filled:want])
            except OSError:
                self.broken = True
                break
            if count == 0:
                break
            filled += count
        reader.length -= filled
        return filled

    def read(self, size: int) -> bytes:
        if self.broken:
            return b""
        try:
            return self._stream.read(size)
        except FramingError as error:  # e.g. a chunk size that is not hex: the client's fault, not the network's
            self.broken = True
            self.malformed = f"{error.__class__.__name__}: {error}"[:200]
            return b""
        except Exception:  # reset, timeout: the connection is gone
            self.broken = True
            return b""

    def abort(self) -> None:
        if self._socket is None:
            return
        # Through a duplicate descriptor: the shutdown reaches the same connection, but the server's own socket
        # object does not cancel its blocked read with an error (gevent would), so bytes it buffered are kept.
        try:
            with socket.socket(fileno=os.dup(self._socket.fileno())) as duplicate:
                duplicate.shutdown(socket.SHUT_RD)
        except OSError:
            pass


def cut_bodies_in_flight() -> None:
    """On shutdown: cut the upload bodies still arriving, so that each request saves what it has and ends."""
    for body in list(_bodies_in_flight):
        body.abort()


def _native_thread_runner():
    """Under gevent, chunk writes and hashing run in gevent's native thread pool (both release the GIL), so the
    event loop keeps serving event streams and other uploads meanwhile. Elsewhere they run in place."""
    try:
        from gevent import get_hub, monkey
    except ImportError:
        return None
    if not monkey.is_module_patched("socket"):
        return None
    return lambda function, *args: get_hub().threadpool.apply(function, args)


def init_app(app) -> None:
    settings = app.config["SETTINGS"]
    redis = app.extensions["redis"]
    hooks = uploads.hooks(redis)
    locker = RedisLocker(redis, on_event=lambda kind: hooks.fire("counted", kind, 1))
    store = DiskStore(settings.uploads_dir, offload=_native_thread_runner())
    app.extensions["tus"] = TusHandler(store, locker, hooks, max_size=settings.upload_max_size,
                                       expiration_seconds=settings.upload_expiration_seconds)


def collection_url() -> str:
    public = current_app.config["SETTINGS"].public_url
    return (public or request.url_root.rstrip("/")) + "/files/"


def _dispatch(upload_id: str | None):
    has_body = request.method in ("POST", "PATCH")
    tus_request = TusRequest(method=request.method, headers=request.headers, base_url=collection_url(),
                             body=WsgiBody(request.environ) if has_body else None,
                             content_length=request.content_length)
    answer = current_app.extensions["tus"].handle(tus_request, upload_id)
    response = Response(answer.body, status=answer.status, headers=answer.headers)
    if "Content-Type" not in answer.headers:
        response.headers["Content-Type"] = "text/plain; charset=utf-8"
    return response


@bp.route("/files/", methods=["OPTIONS", "POST", "GET", "PATCH", "DELETE", "HEAD"])
@bp.route("/files", methods=["OPTIONS", "POST", "GET", "PATCH", "DELETE", "HEAD"])
def collection():
    return _dispatch(None)


@bp.route("/files/<upload_id>/", methods=["OPTIONS", "HEAD", "GET", "PATCH", "DELETE", "POST"])
@bp.route("/files/<upload_id>", methods=["OPTIONS", "HEAD", "GET", "PATCH", "DELETE", "POST"])
def upload(upload_id: str):
    return _dispatch(upload_id)
