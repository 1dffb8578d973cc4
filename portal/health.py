"""What /healthz checks: the database, Redis, a live worker, and supplier orders moving."""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q
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
    """True when some worker has beaten its heart recently (portal.worker's own heartbeat,
    which a Redis flush does not silence for longer than one beat)."""
    from portal import worker

    try:
        return bool(worker.live_workers())
    except Exception:
        return False


def check_orders() -> bool:
    """True when supplier orders are moving: none due for longer than HEALTH_ORDER_MAX_LAG,
    and none held by a job for longer than that plus the claim timeout."""
    from orders.models import VendorOrder

    now = timezone.now()
    lag = timedelta(seconds=settings.HEALTH_ORDER_MAX_LAG)
    held = lag + timedelta(seconds=settings.ORDER_CLAIM_TIMEOUT)
    try:
        late = VendorOrder.objects.filter(
            Q(next_poll_at__lt=now - lag) | Q(next_poll_at__isnull=True, claimed_at__lt=now - held)
        ).exclude(status__in=VendorOrder.Status.FINAL).exists()
    except Exception:
        return False
    return not late


CHECKS = {"database": check_database, "redis": check_redis, "worker": check_worker,
          "orders": check_orders}


def failing_checks() -> list[str]:
    failing = []
    for name, check in CHECKS.items():
        if not check():
            failing.append(name)
            if name == "redis":  # no Redis, no worker to ask about
                failing.append("worker")
                break
    return failing
