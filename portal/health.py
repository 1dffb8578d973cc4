"""What /healthz checks: the database, Redis, and a live RQ worker."""

from django.conf import settings
from django.db import connection
from django.utils import timezone


def check_database() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:  # any failure means "not fine"; the reason is not for the public
        return False


def check_redis() -> bool:
    import django_rq

    try:
        return bool(django_rq.get_connection("default").ping())
    except Exception:
        return False


def check_worker() -> bool:
    """True when some RQ worker has beaten its heart recently enough."""
    import django_rq
    from rq import Worker

    try:
        workers = Worker.all(connection=django_rq.get_connection("default"))
    except Exception:
        return False
    now = timezone.now()
    for worker in workers:
        beat = worker.last_heartbeat  # aware, in UTC
        if beat is not None and (now - beat).total_seconds() <= settings.WORKER_HEARTBEAT_MAX_AGE:
            return True
    return False


CHECKS = {"database": check_database, "redis": check_redis, "worker": check_worker}


def failing_checks() -> list[str]:
    failing = []
    for name, check in CHECKS.items():
        if not check():
            failing.append(name)
            if name == "redis":  # no Redis, no worker to ask about
                failing.append("worker")
                break
    return failing
