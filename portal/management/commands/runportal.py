"""Run the whole portal for development: Redis, sandboxes, web server, worker, scheduler.

Ctrl-C stops every process; if one of them dies the others are stopped too.
"""

import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from portal import embedded_redis
from portal.paths import BASE_DIR

QUEUES = ["orders", "polling", "sync", "default"]


class Command(BaseCommand):
    help = "Migrate, seed demo data, and run Redis, the sandboxes, the web server and a worker."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--no-sandbox", action="store_true",
                            help="do not start the sandbox supplier server")

    def handle(self, *args, addr: str, no_sandbox: bool, **options) -> None:
        processes: list[tuple[str, subprocess.Popen]] = []
        try:
            if settings.EMBEDDED_REDIS:
                redis = embedded_redis.start()
                if redis:
                    processes.append(("redis", redis))
                self.stdout.write(f"Redis (embedded) on {embedded_redis.SOCKET}")
            call_command("migrate", interactive=False, verbosity=0)
            self.stdout.write(f"Demo logins (http://{addr}/admin/):")
            call_command("seed_demo")
            if not no_sandbox:
                processes.append(("sandbox", self._start_sandbox()))
            processes.append(("web", self._spawn(
                ["manage.py", "runserver", addr, "--noreload"]
            )))
            processes.append(("worker", self._spawn(
                ["manage.py", "rqworker", *QUEUES, "--with-scheduler"]
            )))
            processes.append(("scheduler", self._spawn(["manage.py", "rqcron", "portal.cron"])))
            from orders.jobs import enqueue_balance_syncs
            from vendors.jobs import enqueue_catalog_syncs

            enqueue_catalog_syncs()
            enqueue_balance_syncs()
            self.stdout.write(self.style.SUCCESS(
                f"Portal on http://{addr}/  (sandbox suppliers on {settings.SANDBOX_URL}); "
                "Ctrl-C stops everything."
            ))
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            while True:
                for name, process in processes:
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with {process.returncode}; stopping")
                        return
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self._stop(processes)

    def _spawn(self, args: list[str]) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, *args], cwd=BASE_DIR)

    def _start_sandbox(self) -> subprocess.Popen:
        from vendors.sandbox import server

        return server.start(urlsplit(settings.SANDBOX_URL).netloc)

    def _stop(self, processes: list[tuple[str, subprocess.Popen]]) -> None:
        for _, process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for _, process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
