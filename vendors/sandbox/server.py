"""Starting the sandbox server as its own process: gunicorn, two workers sharing one state file.

Used by the run command, the test suite and the benchmarks, so all three run it the same way.
"""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from portal.paths import BASE_DIR


def start(bind: str, *, state: Path | None = None, log: Path | None = None) -> subprocess.Popen:
    """Start the server on ``bind`` (host:port); wait until it answers."""
    env = {**os.environ, **({"SANDBOX_DB": str(state)} if state else {})}
    output = open(log, "ab") if log else None  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "vendors.sandbox.app:application", "-b", bind,
            "-k", "gthread", "-w", "2", "--threads", "8", "--timeout", "120",
            "--graceful-timeout", "3", "--log-level", "warning",
        ],
        env=env, cwd=BASE_DIR, stdout=output, stderr=subprocess.STDOUT if output else None,
        umask=0o077,  # its database holds the sandbox accounts' codes
    )
    if output:
        output.close()
    url = f"http://{bind}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/_sandbox/health", timeout=1).ok:
                return process
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the sandbox server did not start on {bind}; see {log}")
        time.sleep(0.1)


@contextmanager
def running(port: int, *, state: Path, log: Path) -> Iterator[str]:
    """A sandbox server on 127.0.0.1:``port`` for the duration of the block; yields its URL."""
    process = start(f"127.0.0.1:{port}", state=state, log=log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
