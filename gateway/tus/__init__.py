"""A tus 1.0.0 server: protocol (`handler`), storage (`store`), locking (`locks`), and `hooks` for the app.

It knows nothing of what the uploads are for.
"""
from .errors import TusError
from .handler import TUS_VERSION, Body, TusHandler, TusRequest, TusResponse
from .hooks import Hooks
from .locks import RedisLocker
from .store import DiskStore, UploadInfo

__all__ = ["TUS_VERSION", "Body", "DiskStore", "Hooks", "RedisLocker", "TusError", "TusHandler", "TusRequest",
           "TusResponse", "UploadInfo"]
