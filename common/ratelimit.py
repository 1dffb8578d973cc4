"""Request budgets shared by every worker, kept in Redis: a per-minute window and pauses.

A supplier's ``Retry-After`` pauses everyone who calls it, not just the job that was told.
"""

import time

import django_rq


def _redis():
    return django_rq.get_connection("default")


def acquire(key: str, per_minute: int) -> float | None:
    """Take one request from ``key``'s budget: None when allowed, else seconds to wait."""
    redis = _redis()
    paused_ms = redis.pttl(f"pause:{key}")
    if paused_ms and paused_ms > 0:
        return paused_ms / 1000
    now = time.time()
    window = int(now // 60)
    counter = f"rate:{key}:{window}"
    pipe = redis.pipeline()
    pipe.incr(counter)
    pipe.expire(counter, 120)
    count, _ = pipe.execute()
    if count > per_minute:
        return (window + 1) * 60 - now
    return None


def pause(key: str, seconds: float) -> None:
    _redis().set(f"pause:{key}", 1, px=max(1, int(seconds * 1000)))
