"""tuspyserver (a FastAPI router) mounted as its README shows: the peer bench/upload_bench.py compares with.

Run by the benchmark as `uvicorn tuspy_server:app --app-dir bench/peers`, with TUSPY_FILES_DIR set.
"""
import os

from fastapi import FastAPI
from tuspyserver import create_tus_router

app = FastAPI()
app.include_router(create_tus_router(prefix="files", files_dir=os.environ["TUSPY_FILES_DIR"],
                                     max_size=64 * 1024 ** 3))
