"""What every scenario needs: a private environment, Django, Redis, a sandbox server, real RQ
workers in their own processes, counting what they asked the suppliers, and the figures.

``configure()`` must run before anything imports Django or ``portal``: it points ``VAR_DIR``
at the benchmark's own directory and the database at a throwaway one: a SQLite file there,
or, when ``DATABASE_URL`` names a PostgreSQL server, a database of its own on that server
(``BENCH_DATABASE``, dropped and created again). A ``REDIS_URL`` server is used at its
database ``BENCH_REDIS_DB``, emptied; otherwise the embedded Redis under ``VAR_DIR``.

Each scenario hands its headline figures to ``record()``: the value, its target and the
baseline measured in the same run. ``report()`` prints them as one table at the end and writes
them as JSON.
"""

import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
QUEUES = ("orders", "polling")
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "voucher_portal_bench")
BENCH_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "12"))


@dataclass
class Figure:
    """One measured figure: ``met`` is None where the figure has no target."""

    scenario: str
    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    baseline: str = ""


FIGURES: list[Figure] = []


def record(scenario: str, name: str, value: float, unit: str, *, target: str = "",
           met: bool | None = None, baseline: str = "") -> Figure:
    figure = Figure(scenario, name, value, unit, target, met, baseline)
    FIGURES.append(figure)
    return figure


def database_engine() -> str:
    """``postgresql`` or ``sqlite``: what the scenarios run on (after ``configure()``)."""
    return "postgresql" if os.environ["DATABASE_URL"].startswith(("postgres", "pgsql")) \
        else "sqlite"


def machine() -> str:
    cpus = os.cpu_count()
    memory = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return f"{platform.machine()} {cpus} CPUs{memory}, Python {platform.python_version()}"


def redis_kind() -> str:
    return "server" if os.environ.get("REDIS_URL") else "embedded"


def report(path: Path, seconds: float) -> None:
    """Print every recorded figure beside its target and baseline; write them as JSON."""
    if FIGURES:
        rows = [(f.scenario, f.name, f"{f.value:,.{2 if abs(f.value) < 100 else 0}f} {f.unit}",
                 f.target, {True: "met", False: "MISSED", None: ""}[f.met], f.baseline)
                for f in FIGURES]
        head = ("scenario", "figure", "value", "target", "", "baseline")
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        print(f"\nsummary ({database_engine()}, {redis_kind()} Redis, {machine()}):")
        for row in [head, *rows]:
            print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    path.write_text(json.dumps({
        "database": database_engine(), "redis": redis_kind(), "machine": machine(),
        "seconds": round(seconds),
        "figures": [asdict(f) for f in FIGURES],
    }, indent=2))
    print(f"figures in {path}")


def configure() -> Path:
    """Set the environment for a benchmark run; return its ``VAR_DIR``, emptied."""
    var_dir = Path(os.environ.get("VAR_DIR") or BASE_DIR / "var" / "bench").resolve()
    if var_dir in (BASE_DIR / "var", BASE_DIR.resolve() / "var"):
        raise SystemExit(f"VAR_DIR={var_dir} is the portal's own state; benchmarks need a "
                         "directory of their own (make bench uses var/bench)")
    os.environ["VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    # A throwaway database whatever the environment or .env says: never the portal's own.
    server = os.environ.get("DATABASE_URL", "")
    if server.startswith(("postgres", "pgsql")):
        os.environ["DATABASE_URL"] = fresh_postgres_database(server)
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{var_dir / 'portal.sqlite3'}"
    if os.environ.get("REDIS_URL"):
        parts = urlsplit(os.environ["REDIS_URL"])
        os.environ["REDIS_URL"] = urlunsplit(parts._replace(path=f"/{BENCH_REDIS_DB}"))
    os.environ.setdefault("LOG_LEVEL", "INFO")  # workers log each supplier request
    var_dir.mkdir(parents=True, exist_ok=True)
    return var_dir


def fresh_postgres_database(url: str) -> str:
    """Drop and create ``BENCH_DATABASE`` on the server of ``url``; return its URL."""
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    return urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}"))


def fresh_database() -> None:
    """Start the benchmark's database again, empty and migrated (a scenario that writes rows
    with ids of its own, after others wrote theirs)."""
    from django.db import connections

    connections.close_all()
    url = os.environ["DATABASE_URL"]
    if database_engine() == "postgresql":
        fresh_postgres_database(url)
    else:
        Path(urlsplit(url).path).unlink(missing_ok=True)
    setup_django()


def reset_state(var_dir: Path) -> None:
    """Forget the previous run: database, sandbox state, logs (keys and Redis stay)."""
    for pattern in ("portal.sqlite3*", "sandbox*.sqlite3*", "*.log"):
        for path in var_dir.glob(pattern):
            if path.name == "redis.log":
                continue
            path.unlink()
    shutil.rmtree(var_dir / "logs", ignore_errors=True)
    (var_dir / "logs").mkdir()


def setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


@contextmanager
def redis():
    """The embedded Redis unless ``REDIS_URL`` names one; either starts empty (the server's
    database is the benchmark's own, see ``configure()``)."""
    import django_rq
    from django.conf import settings

    from portal import embedded_redis

    process = embedded_redis.start() if settings.EMBEDDED_REDIS else None
    django_rq.get_connection("default").flushdb()
    try:
        yield
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def sandbox_server(var_dir: Path):
    """The sandbox suppliers (gunicorn, like the test suite's), on a free port."""
    import requests

    port = free_port()
    log = open(var_dir / "logs" / "sandbox.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "vendors.sandbox.app:application",
         "-b", f"127.0.0.1:{port}", "-k", "gthread", "-w", "2", "--threads", "8",
         "--timeout", "120"],
        env={**os.environ, "SANDBOX_DB": str(var_dir / "sandbox.sqlite3")},
        cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if requests.get(f"{url}/_sandbox/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox server did not start; see {log.name}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


class Workers:
    """Real RQ workers (``manage.py rqworker`` through ``benchmarks.worker``), one process
    each, logging to files so their supplier requests can be counted afterwards."""

    def __init__(self, var_dir: Path, name: str, count: int = 2, **options: str) -> None:
        self.logs = [var_dir / "logs" / f"{name}-worker{i + 1}.log" for i in range(count)]
        self.options = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "Workers":
        for path in self.logs:
            with open(path, "wb") as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.worker", *self.options, *QUEUES],
                    cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
                ))
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def check(self) -> None:
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"a worker exited with {process.returncode}; see {log}")

    def supplier_requests(self) -> Counter:
        """Requests the workers sent to suppliers, by kind, from the ``common.http`` lines."""
        counts: Counter = Counter()
        line = re.compile(r" common\.http (GET|POST|PUT|PATCH|DELETE) (\S+?):? ")
        for path in self.logs:
            for match in line.finditer(path.read_text(errors="replace")):
                counts[request_kind(match.group(1), match.group(2))] += 1
        return counts


    def supplier_answers(self) -> Counter:
        """The supplier's answers to the workers, by HTTP status."""
        counts: Counter = Counter()
        line = re.compile(r" common\.http (?:GET|POST|PUT|PATCH|DELETE) \S+ -> (\d{3}) ")
        for path in self.logs:
            counts.update(line.findall(path.read_text(errors="replace")))
        return counts


def request_kind(method: str, url: str) -> str:
    if method == "POST" and url.rstrip("/").endswith("/orders"):
        return "submit"
    if method == "GET" and "/catalog/" in url:
        return "price check"
    if method == "GET" and "/orders/" in url:
        return "poll"
    return f"{method} other"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
