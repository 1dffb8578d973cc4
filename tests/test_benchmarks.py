"""Every benchmark scenario runs at its smoke size on this run's database and Redis, the way
``make bench`` runs it: a change that breaks a benchmark (a column its seeding leaves out, an
option renamed) fails the suite instead of waiting for the next person who measures."""

import json
import os
import subprocess
import sys

from django.db import connection

from benchmarks.__main__ import SCENARIOS
from portal.paths import BASE_DIR


def test_it_runs_every_benchmark_at_its_smoke_size(tmp_path):
    var_dir = tmp_path / "bench"
    env = {**os.environ, "VAR_DIR": str(var_dir),
           # On the servers: a database and a Redis database of its own, never the suite's.
           "BENCH_DATABASE": "voucher_portal_bench_smoke", "BENCH_REDIS_DB": "13"}
    run = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke"], cwd=BASE_DIR,
                         env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    results = json.loads((var_dir / "results.json").read_text())
    assert results["database"] == ("postgresql" if connection.vendor == "postgresql"
                                   else "sqlite")
    assert {figure["scenario"] for figure in results["figures"]} == set(SCENARIOS)
