"""Fixtures for browser tests: Chromium through Playwright, against a live portal with a real
worker and scheduler in their own processes, and the sandbox suppliers."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portal.paths import BASE_DIR
from tests.conftest import database_url

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = BASE_DIR / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


@pytest.fixture(scope="module")
def chromium():
    """Chromium for one module: Playwright's event loop ends with it."""
    if not Path(CHROMIUM).exists() or not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing under CI: .ci/run installs Debian's chromium")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, request):
    context = chromium.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture
def background_workers(transactional_db, settings, redis_conn, tmp_path):
    """A real RQ worker and the rqcron scheduler, as the run command starts them."""
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
           "VAR_DIR": os.environ.get("VAR_DIR", str(BASE_DIR / "var" / "test"))}
    log = open(tmp_path / "workers.log", "wb")  # noqa: SIM115
    processes = [
        subprocess.Popen([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env,
                         stdout=log, stderr=subprocess.STDOUT)
        for args in (["rqworker", "orders", "polling", "sync", "default"],
                     ["rqcron", "portal.cron"])
    ]
    yield
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=15)
    log.close()
