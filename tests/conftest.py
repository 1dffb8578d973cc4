"""Shared fixtures: the embedded Redis, the sandbox supplier server, users."""

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests
from django.conf import settings

from portal import embedded_redis
from portal.paths import BASE_DIR


@pytest.fixture(scope="session", autouse=True)
def redis_server():
    """Start the embedded Redis for the run when no REDIS_URL is configured."""
    process = embedded_redis.start() if settings.EMBEDDED_REDIS else None
    yield
    if process is not None:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_conn():
    """The test Redis database, emptied before the test."""
    import django_rq

    conn = django_rq.get_connection("default")
    conn.flushdb()
    return conn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def sandbox_url(tmp_path_factory) -> str:
    """A real sandbox server (gunicorn, two processes) on a free port, with its own state."""
    port = free_port()
    state = tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite3"
    log = open(tmp_path_factory.getbasetemp() / "sandbox.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "vendors.sandbox.app:application",
            "-b", f"127.0.0.1:{port}", "-k", "gthread", "-w", "2", "--threads", "8",
            "--timeout", "120",
        ],
        env={**os.environ, "SANDBOX_DB": str(state)},
        cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/_sandbox/health", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the sandbox server did not start; see sandbox.log")
        time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def unique() -> str:
    """A short unique token, for sandbox account names and references."""
    return uuid.uuid4().hex[:10]


class MemoryCache:
    """A token cache for adapter unit tests: the same get/set/delete as Django's cache."""

    def __init__(self) -> None:
        self.data: dict = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value, timeout=None):
        self.data[key] = value

    def delete(self, key):
        return self.data.pop(key, None) is not None


@pytest.fixture
def token_cache() -> MemoryCache:
    return MemoryCache()
