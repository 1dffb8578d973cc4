"""A real RQ worker for the benchmarks: ``manage.py rqworker <queues>`` in this process.

``--fixed-interval N --origin EPOCH`` turns the worker into the baseline a portal without
estimates would be: every open supplier order is polled on a fixed clock, every N seconds
counted from EPOCH (one cron-style loop over all open orders), ignoring the supplier's
estimated-ready time and any back-off. Only the scheduling of the next poll changes; the
submission, the polls and the storing of codes are the engine's own.

``--worker-class DOTTED.PATH`` runs that RQ worker class instead of ``RQ["WORKER_CLASS"]``.
"""

import argparse
import math
import time
from datetime import UTC, datetime


def fixed_clock(interval: float, origin: float):
    def next_poll(vo) -> datetime:
        now = time.time()
        tick = origin + (math.floor((now - origin) / interval) + 1) * interval
        return datetime.fromtimestamp(tick, UTC)

    return next_poll


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("queues", nargs="+")
    parser.add_argument("--fixed-interval", type=float)
    parser.add_argument("--origin", type=float)
    parser.add_argument("--worker-class")
    args = parser.parse_args()

    import django
    from django.core.management import call_command

    django.setup()
    if args.fixed_interval:
        from orders import fulfilment

        fulfilment._next_poll = fixed_clock(args.fixed_interval, args.origin or time.time())
    options = {"worker_class": args.worker_class} if args.worker_class else {}
    call_command("rqworker", *args.queues, **options)


if __name__ == "__main__":
    main()
