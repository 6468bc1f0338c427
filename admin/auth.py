"""Analysts' login for /admin/ and /cms/: a session cookie holding the user's id, CSRF on every form, and failed
logins slowed down per username and per client address.

- A wrong password and an unknown username give the same answer, after the same work: an unknown username is
  checked against a dummy hash made the same way as real ones.
- Failures are counted in Redis, per username and per client address, in a sliding window (`WINDOW` seconds
  after the last failure). From the `USER_LIMIT`-th failure of a username (or the `IP_LIMIT`-th of an address)
  on, each further attempt must wait: 30 s, then 60 s, 120 s … (at most `WINDOW`); an attempt made sooner is
  answered 429 with `Retry-After`, without checking the password. A successful login clears its username's
  count (not the address's: a guesser with one good account must not reset the address count with it).
- The session remembers a fingerprint of the password hash: changing a password (or deleting the user) in the
  admin ends that user's sessions everywhere.
"""
from __future__ import annotations

import hashlib
import math
import secrets
import time
from functools import wraps
from urllib.parse import urlsplit

from flask import (Blueprint, current_app, flash, g, has_request_context, jsonify, redirect, render_template,
                   request, session, url_for)
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError

from gateway.extensions import csrf, db
from gateway.models import User

bp = Blueprint("auth", __name__, template_folder="templates")

WINDOW = 15 * 60  # failures are forgotten this long after the last one
USER_LIMIT = 5  # failures of one username before attempts are slowed down
IP_LIMIT = 10  # of one client address: several analysts may share an office's address
FIRST_DELAY = 30  # seconds to wait after the limit is reached; doubles with every further failure
WRONG = "wrong username or password"

_SESSION_USER = "admin_user_id"
_SESSION_MARK = "admin_user_mark"
_dummy_hash: str | None = None


# -- who is logged in --------------------------------------------------------------------------------
def _mark(user: User) -> str:
    """Ties a session to the password it was opened with."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]


def current_user() -> User | None:
    """The logged-in analyst of this request, or None."""
    if not has_request_context():
        return None
    cache = request.environ  # per request (g may outlive one when an app context is kept open, as in tests)
    if "admin.user" in cache:
        return cache["admin.user"]
    user = None
    user_id = session.get(_SESSION_USER)
    if isinstance(user_id, int):
        user = db.session.get(User, user_id)
        if user is not None and not secrets.compare_digest(session.get(_SESSION_MARK, ""), _mark(user)):
            user = None
    cache["admin.user"] = user
    return user


def login_url() -> str:
    return url_for("auth.login", next=request.script_root + request.full_path.rstrip("?"))


def login_required(view):
    """Pages redirect to the login form (and come back after it); JSON answers 401."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_user() is None:
            if request.accept_mimetypes.best == "application/json" or request.path.endswith(".json"):
                return jsonify(error="login required"), 401
            return redirect(login_url())
        return view(*args, **kwargs)
    return wrapper


def safe_next(target: str | None) -> str:
    """`next` only ever leads to a path on this site; anything else goes to the dashboard."""
    default = url_for("cms.index")
    if not target or not isinstance(target, str) or len(target) > 2000:
        return default
    if any(ord(ch) < 32 or ch == "\\" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


# -- throttling ----------------------------------------------------------------------------------------
def _keys(username: str) -> list[tuple[str, int]]:
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    address = request.remote_addr or "unknown"
    return [(f"login:fail:user:{name}", USER_LIMIT), (f"login:fail:ip:{address}", IP_LIMIT)]


def _delay(failures: int, limit: int) -> int:
    if failures < limit:
        return 0
    return int(min(FIRST_DELAY * 2 ** (failures - limit), WINDOW))


def _wait_seconds(redis, username: str) -> int:
    """How long this attempt must still wait (0: it may go ahead)."""
    now = time.time()
    wait = 0.0
    for key, limit in _keys(username):
        failures, last = redis.hmget(key, "n", "last")
        if failures is None or last is None:
            continue
        until = float(last) + _delay(int(failures), limit)
        wait = max(wait, until - now)
    return math.ceil(wait) if wait > 0 else 0


def _record_failure(redis, username: str) -> None:
    pipe = redis.pipeline(transaction=True)
    for key, _ in _keys(username):
        pipe.hincrby(key, "n", 1)
        pipe.hset(key, "last", repr(time.time()))
        pipe.expire(key, WINDOW)
    pipe.execute()


def _clear_user(redis, username: str) -> None:
    redis.delete(_keys(username)[0][0])


def _check_password(user: User | None, password: str) -> bool:
    """The same work whether or not the user exists."""
    global _dummy_hash
    if user is None:
        from werkzeug.security import check_password_hash, generate_password_hash
        if _dummy_hash is None:
            _dummy_hash = generate_password_hash(secrets.token_hex(16))
        check_password_hash(_dummy_hash, password)
        return False
    return user.check_password(password)


# -- views -----------------------------------------------------------------------------------------------
def _form(status: int = 200, error: str | None = None, username: str = "", headers: dict | None = None):
    next_target = request.values.get("next", "")
    return render_template("auth/login.html", error=error, username=username, next=next_target), status, \
        headers or {}


@bp.errorhandler(CSRFError)
def _csrf_failed(error: CSRFError):
    return _form(400, f"the form has expired or was not sent from this site ({error.description}); try again")


@bp.route("/login/", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if current_user() is not None:
            return redirect(safe_next(request.args.get("next")))
        return _form()

    csrf.protect()
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    if not isinstance(username, str) or len(username) > 80 or len(password) > 1024:
        return _form(400, WRONG)
    username = username.strip()
    redis = current_app.extensions["redis"]
    try:
        wait = _wait_seconds(redis, username)
    except RedisError:
        # Fail closed: without the counters nothing slows a guesser down. Open sessions keep working.
        return _form(503, "login is unavailable for a moment (the rate limiter cannot be reached); try again",
                     username, {"Retry-After": "30"})
    if wait:
        return _form(429, f"too many failed logins: wait {wait} s before trying again "
                          f"(each further failure doubles the wait)", username, {"Retry-After": str(wait)})

    user = db.session.query(User).filter_by(username=username).one_or_none() if username else None
    if not _check_password(user, password):
        try:
            _record_failure(redis, username)
        except RedisError:
            pass
        return _form(401, WRONG, username)

    try:
        _clear_user(redis, username)
    except RedisError:
        pass
    session.clear()  # a fresh session (and CSRF token) for the logged-in user
    g.pop("csrf_token", None)  # Flask-WTF's per-request copy of the old token
    session[_SESSION_USER] = user.id
    session[_SESSION_MARK] = _mark(user)
    request.environ.pop("admin.user", None)
    return redirect(safe_next(request.form.get("next")))


@bp.post("/logout/")
def logout():
    csrf.protect()
    session.pop(_SESSION_USER, None)
    session.pop(_SESSION_MARK, None)
    request.environ.pop("admin.user", None)
    flash("You are logged out.")
    return redirect(url_for("auth.login"))
