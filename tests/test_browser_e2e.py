"""The uploader's page in a real headless Chromium (Debian's package, driven by Playwright): pick a fixture,
upload it, send the form, wait for db_ready, and check the findings shown."""
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import ROOT

FIXTURES = Path(__file__).parent / "fixtures" / "scripts"
OUTPUT = ROOT / "test-output"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ENV = dict(REFER_ROTATION_SECONDS=30, REFER_LIFETIME_SECONDS=120, REFER_GRACE_SECONDS=5,
           REFER_FROZEN_TTL_SECONDS=120)


def browser_or_skip():
    if CHROMIUM:
        return CHROMIUM
    message = ("Chromium is not installed: `apt-get install chromium` (.ci/run does it) enables this test")
    if os.environ.get("CI"):
        pytest.fail(message)  # CI must run it, never skip it
    pytest.skip(message)


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright
    executable = browser_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        context = browser.new_context(viewport={"width": 390, "height": 844})  # a narrow phone screen
        tab = context.new_page()
        tab.problems = []
        tab.on("console", lambda message: message.type == "error" and tab.problems.append(message.text))
        tab.on("pageerror", lambda error: tab.problems.append(str(error)))
        yield tab
        browser.close()


@pytest.mark.parametrize("name", ["severe_ru.txt"])
def test_upload_analyse_and_show_findings(server_factory, worker_factory, loaded_catalog, page, name):
    server = server_factory(**ENV)
    worker_factory(**ENV, PUBLIC_URL=server.url)
    want = json.loads((FIXTURES / "expected.json").read_text())[name]

    page.goto(server.url + "/")
    page.set_input_files("#file", str(FIXTURES / name))
    page.fill("input[name=title]", "Browser test")
    page.select_option("select[name=target_audience]", "12+")
    page.click("#submit")
    page.wait_for_selector('#timeline[data-status="db_ready"]', timeout=90_000)
    page.wait_for_selector("#by-scene .finding", timeout=10_000)

    shown = {int(v) for v in page.eval_on_selector_all("#by-scene .finding", "els => els.map(e => e.dataset.violation)")}
    ids = {code: index + 1 for index, code in enumerate(loaded_catalog)}
    assert shown == {ids[code] for code in want["categories"]}
    assert want["rating"] in page.inner_text("#rating-line")
    assert page.get_attribute("#report-link", "href").startswith(server.url + "/results/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page overflows a narrow screen"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "uploader-db_ready.png"), full_page=True)
    assert page.problems == [], page.problems
