"""A small WSGI toolkit for the supplier simulators: routing, JSON answers, shared state, faults.

State lives in one SQLite file (``SANDBOX_DB``, default ``VAR_DIR/sandbox.sqlite3``) so it
survives restarts and is shared by several server processes. Every supplier keeps JSON
documents in namespaces of its own, and records each code it issues so tests can compare
what was issued with what the portal stored.

Faults are switched per supplier account at run time through the control API (see
``vendors/sandbox/app.py``); each request asks ``take_fault`` whether one applies to it.

This package shares no code with the adapters: it is written from the suppliers' documents.
"""

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from portal.paths import VAR_DIR

_local = threading.local()

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    ns TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (ns, id)
);
CREATE TABLE IF NOT EXISTS issued (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, supplier TEXT NOT NULL, account TEXT NOT NULL,
    order_id TEXT NOT NULL, code TEXT NOT NULL UNIQUE, pin TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL
);
"""


def db_path() -> Path:
    return Path(os.environ.get("SANDBOX_DB") or VAR_DIR / "sandbox.sqlite3")


def connection() -> sqlite3.Connection:
    path = db_path()
    conn = getattr(_local, "conn", None)
    if conn is None or getattr(_local, "path", None) != path:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        _local.conn, _local.path = conn, path
    return conn


@contextmanager
def transaction() -> Iterator[sqlite3.Connection]:
    """An IMMEDIATE transaction: one writer at a time across every server process."""
    conn = connection()
    if conn.in_transaction:  # nested: join the outer one
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def get(ns: str, id: str) -> dict | None:
    row = connection().execute("SELECT body FROM docs WHERE ns=? AND id=?", (ns, id)).fetchone()
    return json.loads(row[0]) if row else None


def put(ns: str, id: str, body: dict) -> dict:
    connection().execute(
        "INSERT INTO docs (ns, id, body, created) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (ns, id) DO UPDATE SET body=excluded.body",
        (ns, id, json.dumps(body), time.time()),
    )
    return body


def all_docs(ns: str) -> list[dict]:
    rows = connection().execute(
        "SELECT body FROM docs WHERE ns=? ORDER BY created, id", (ns,)
    ).fetchall()
    return [json.loads(r[0]) for r in rows]


def record_issued(supplier: str, account: str, order_id: str, code: str, pin: str = "") -> None:
    connection().execute(
        "INSERT INTO issued (supplier, account, order_id, code, pin, created) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (supplier, account, str(order_id), code, pin, time.time()),
    )


def issued(supplier: str | None = None, account: str | None = None) -> list[dict]:
    sql = "SELECT supplier, account, order_id, code, pin FROM issued WHERE 1=1"
    args: list[Any] = []
    if supplier:
        sql += " AND supplier=?"
        args.append(supplier)
    if account:
        sql += " AND account=?"
        args.append(account)
    rows = connection().execute(sql + " ORDER BY seq", args).fetchall()
    keys = ("supplier", "account", "order_id", "code", "pin")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def next_number(name: str) -> int:
    """A counter shared by all processes (order ids, stock ids)."""
    with transaction() as conn:
        row = conn.execute("SELECT value FROM counters WHERE key=?", (name,)).fetchone()
        value = (row[0] if row else 0) + 1
        conn.execute(
            "INSERT INTO counters (key, value, expires) VALUES (?, ?, 1e18) "
            "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            (name, value),
        )
    return value


def hit_rate_limit(key: str, limit: int, window: int = 60) -> float | None:
    """Count a request in a fixed window; the seconds to wait when over ``limit``, else None."""
    now = time.time()
    window_start = now - now % window
    name = f"rate:{key}:{int(window_start)}"
    with transaction() as conn:
        row = conn.execute("SELECT value FROM counters WHERE key=?", (name,)).fetchone()
        count = (row[0] if row else 0) + 1
        conn.execute(
            "INSERT INTO counters (key, value, expires) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            (name, count, window_start + window),
        )
        conn.execute("DELETE FROM counters WHERE expires < ?", (now,))
    if count > limit:
        return max(1.0, window_start + window - now)
    return None


# Faults, per supplier account. A fault doc looks like
# {"latency": 0.5, "error_5xx": 2, "timeout_after_accept": 1, "timeout_seconds": 5,
#  "malformed_json": 1, "unknown_status": 1, "rate_limit": 1, "retry_after": 2}
# where the integers count the requests still to be hit (-1: every request). Besides:
# "error_5xx_every": N (one GET in N answers a 5xx, at random), "fail_paths": {"/path": 502}
# (those paths always answer that status), "rate_limit_per_minute" (the account's limit),
# "rate_limited_until": epoch seconds (a 429 burst: every request until then answers 429 with
# the Retry-After left).
FAULT_KINDS = ("error_5xx", "timeout_after_accept", "malformed_json", "unknown_status",
               "rate_limit")


def set_faults(supplier: str, account: str, faults: dict) -> dict:
    with transaction():
        return put("faults", f"{supplier}:{account}", faults)


def faults(supplier: str, account: str) -> dict:
    return get("faults", f"{supplier}:{account}") or {}


def take_fault(supplier: str, account: str, kind: str) -> dict | None:
    """Use up one occurrence of a fault: the account's fault settings if it applies, else None."""
    with transaction():
        current = faults(supplier, account)
        remaining = current.get(kind, 0)
        if not remaining:
            return None
        if remaining > 0:
            current[kind] = remaining - 1
            put("faults", f"{supplier}:{account}", current)
    return current


def reset() -> None:
    with transaction() as conn:
        conn.execute("DELETE FROM docs")
        conn.execute("DELETE FROM issued")
        conn.execute("DELETE FROM counters")


def now_iso(offset_seconds: float = 0) -> str:
    return datetime.fromtimestamp(time.time() + offset_seconds, UTC).isoformat().replace(
        "+00:00", "Z"
    )


class Request:
    def __init__(self, environ: dict, path: str) -> None:
        self.environ = environ
        self.method = environ["REQUEST_METHOD"].upper()
        self.path = path
        self.query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.body = environ["wsgi.input"].read(length) if length else b""
        self.params: dict[str, str] = {}

    def header(self, name: str, default: str = "") -> str:
        key = "HTTP_" + name.upper().replace("-", "_")
        if name.lower() == "content-type":
            key = "CONTENT_TYPE"
        return self.environ.get(key, default)

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return json.loads(self.body or b"null")


class Response:
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
                 raw: bytes | None = None) -> None:
        self.status = status
        self.headers = dict(headers or {})
        if raw is not None:
            self.data = raw
        else:
            self.data = b"" if body is None else json.dumps(body).encode()
            self.headers.setdefault("Content-Type", "application/json")


STATUS_TEXT = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 422: "Unprocessable Entity", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}

Handler = Callable[..., Response]


class Router:
    """Routes like ``/orders/{ref}`` to handlers taking (request, **params)."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern, Handler]] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$")

        def register(handler: Handler) -> Handler:
            self.routes.append((method.upper(), regex, handler))
            return handler

        return register

    def dispatch(self, request: Request) -> Response | None:
        allowed = False
        for method, regex, handler in self.routes:
            match = regex.match(request.path)
            if match:
                allowed = True
                if method == request.method:
                    request.params = match.groupdict()
                    return handler(request, **match.groupdict())
        return Response(405, {"error": "method not allowed"}) if allowed else None


def serve(response: Response, start_response) -> list[bytes]:
    status = f"{response.status} {STATUS_TEXT.get(response.status, 'Status')}"
    headers = list(response.headers.items()) + [("Content-Length", str(len(response.data)))]
    start_response(status, headers)
    return [response.data]
