"""RQ job functions: plain importable functions with plain arguments, each a thin call into the domain.

They run inside the worker's app context (see `workers.__main__`).
"""
from flask import current_app


def expire_uploads() -> int:
    """Remove unfinished uploads past UPLOAD_EXPIRATION_SECONDS, bytes and rows."""
    return len(current_app.extensions["tus"].expire())
