"""``python -m benchmarks [scenario ...]``: run every scenario, or the ones named.

``make bench`` runs them all with ``VAR_DIR=var/bench``; ``make bench ARGS=polling`` runs one,
``make bench ARGS="polling --orders 100 --arrival 20"`` a smaller one,
``make bench ARGS="order_list --rows 100000"`` the order list on fewer orders,
``make bench ARGS=webhooks`` the Starship webhook lag alone,
``make bench ARGS=requests`` the supplier requests per order of each supplier,
``make bench ARGS="throughput --batch 100"`` orders per minute with 1, 2 and 4 workers,
``make bench ARGS="worker_memory --jobs 2000"`` a worker's memory over fewer jobs,
``make bench ARGS="export --codes 20000"`` the CSV export of fewer codes,
``make bench ARGS=bulk_preview`` the preview of a 1,000-row bulk order file,
``make bench ARGS=--smoke`` every scenario at its smoke size (a few orders, rows or codes):
what ``tests/test_benchmarks.py`` runs on each backend, so a benchmark that no longer runs
fails the suite. Smoke figures prove that a scenario runs, not how fast.
"""

import argparse
import importlib
import time

from benchmarks import harness

# The sizes of --smoke, for the options above that set one.
SMOKE = {"orders": 4, "arrival": 2.0, "rows": 5000, "batch": 4, "jobs": 30, "codes": 20,
         "bulk_rows": 10}

# In the order they run: order_list last, on a fresh database of a million orders.
SCENARIOS = {
    "polling": "benchmarks.polling",
    "webhooks": "benchmarks.webhooks",
    "requests": "benchmarks.requests",
    "throughput": "benchmarks.throughput",
    "worker_memory": "benchmarks.worker_memory",
    "export": "benchmarks.export",
    "bulk_preview": "benchmarks.bulk_preview",
    "order_list": "benchmarks.order_list",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split(
        "\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="scenario",
                        help=f"one of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--orders", type=int, default=500, help="orders per run (500)")
    parser.add_argument("--arrival", type=float, default=60.0,
                        help="seconds over which the orders arrive (60)")
    parser.add_argument("--seed", type=int, default=2026, help="random seed (2026)")
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="orders in the order_list database (1000000)")
    parser.add_argument("--batch", type=int, default=300,
                        help="orders per throughput run (300)")
    parser.add_argument("--worker-class",
                        help="RQ worker class of the throughput and worker_memory runs "
                        "(default RQ['WORKER_CLASS'], the portal's PortalWorker)")
    parser.add_argument("--jobs", type=int, default=10_000,
                        help="jobs the worker_memory worker runs (10000)")
    parser.add_argument("--codes", type=int, default=100_000,
                        help="codes in the export database (100000)")
    parser.add_argument("--bulk-rows", type=int, default=1_000,
                        help="rows of the bulk_preview file (1000)")
    parser.add_argument("--smoke", action="store_true",
                        help="every size at its smoke value: proves a scenario runs")
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")

    var_dir = harness.configure()
    harness.reset_state(var_dir)
    harness.setup_django()
    started = time.monotonic()
    with harness.redis(), harness.sandbox_server(var_dir) as sandbox_url:
        for name in args.scenarios or list(SCENARIOS):
            print(f"== {name} (state and logs in {var_dir})", flush=True)
            began = time.monotonic()
            importlib.import_module(SCENARIOS[name]).run(
                args, var_dir=var_dir, sandbox_url=sandbox_url
            )
            print(f"== {name} done in {time.monotonic() - began:.0f} s", flush=True)
    seconds = time.monotonic() - started
    harness.report(var_dir / "results.json", seconds)
    print(f"\nbenchmarks done in {seconds:.0f} s")


if __name__ == "__main__":
    main()
