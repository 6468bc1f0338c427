"""The protocol's errors: each carries its HTTP status, a message for the body, and any headers tus requires."""


class TusError(Exception):
    status = 400

    def __init__(self, message: str, status: int | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = headers or {}


class BadRequest(TusError):
    status = 400


class Forbidden(TusError):
    status = 403


class NotFound(TusError):
    status = 404


class Conflict(TusError):
    status = 409


class Gone(TusError):
    status = 410


class PreconditionFailed(TusError):
    status = 412


class TooLarge(TusError):
    status = 413


class UnsupportedMediaType(TusError):
    status = 415


class Locked(TusError):
    status = 423


class ChecksumMismatch(TusError):
    status = 460


class Unavailable(TusError):
    status = 503
