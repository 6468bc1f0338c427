"""The built-in analyzer end to end on a real worker: it fetches by refer, posts comments, the report and the
recommendation through the public API; unreadable files end in error with the reason."""
import io
import json
import zipfile
from pathlib import Path

import pytest
import requests

from conftest import browser, upload_file, wait_until

FIXTURES = Path(__file__).parent / "fixtures" / "scripts"
ENV = dict(REFER_ROTATION_SECONDS=30, REFER_LIFETIME_SECONDS=120, REFER_GRACE_SECONDS=5,
           REFER_FROZEN_TTL_SECONDS=120)


@pytest.fixture
def gateway(server_factory, worker_factory, loaded_catalog):
    server = server_factory(**ENV)
    worker_factory(**ENV, PUBLIC_URL=server.url)
    return server


def analyse(server, data: bytes, filename: str, target="12+") -> dict:
    file_id = upload_file(server.url, data, filename, "application/octet-stream")
    analysis_id = browser(server.url).post(server.url + "/cinema/", json={
        "file_id": file_id, "target_audience": target, "title": filename}).json()["id"]

    def finished():
        shown = requests.get(f"{server.url}/cinema/{analysis_id}/", params={"file_id": file_id}).json()
        return shown if shown["status"] in ("db_ready", "error") else None

    shown = wait_until(finished, timeout=60, every=0.2, message=f"the analysis of {filename}")
    shown["comments"] = requests.get(f"{server.url}/comments/", params={"analysis_id": analysis_id,
                                                                        "file_id": file_id}).json()
    return shown


def expected() -> dict:
    return json.loads((FIXTURES / "expected.json").read_text())


def test_every_fixture(gateway, loaded_catalog):
    """One gateway for all fixtures (starting one per fixture would cost more than the analyses)."""
    wanted = expected()
    assert len(wanted) >= 8
    for name, want in sorted(wanted.items()):
        shown = analyse(gateway, (FIXTURES / name).read_bytes(), name)
        assert shown["status"] == "db_ready", (name, shown)
        found = {v["name"] for v in shown["violations"]}
        assert found == {loaded_catalog[code].name for code in want["categories"]}, (name, found)
        assert shown["suggested_age_rating"] == want["rating"], name
        ai = [c for c in shown["comments"] if c["author"] == "AI"]
        assert all(c["location"] and c["quote"] and c["violation_id"] for c in ai), name
        report = requests.get(shown["result_url"])
        assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/html"), name
        assert shown["suggested_age_rating"].encode() in report.content, name


def broken_docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<not-really-xml")
    return buffer.getvalue()


UNREADABLE = [
    ("broken.docx", broken_docx(), "docx"),
    ("empty.txt", b"", "no text"),
    ("blank.txt", b"   \n\n  \t\n", "no text"),
    ("binary.pdf", bytes(range(256)) * 64, "binary"),
    ("fake.pdf", b"%PDF-1.4\n garbage that is not a pdf", "pdf"),
]


def test_unreadable_files_end_in_error_with_the_reason(gateway):
    for filename, data, why in UNREADABLE:
        shown = analyse(gateway, data, filename)
        assert shown["status"] == "error", filename
        assert shown["reason"].startswith("unreadable file") and why in shown["reason"].lower(), shown["reason"]
        assert shown["result_url"] is None and not [c for c in shown["comments"] if c["author"] == "AI"]
