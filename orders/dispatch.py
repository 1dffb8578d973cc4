"""Claiming and queueing: which supplier orders a worker acts on next, and giving back those
whose job was lost.

Scheduling lives in the database: ``VendorOrder.next_poll_at`` says when a worker should next
act on a supplier order. ``dispatch_due`` claims due rows one by one (a conditional UPDATE, so
two dispatchers never queue the same row) and queues one job per row (``JOB``, which runs
orders.fulfilment.advance); the job's own outcome sets the next time. ``sweep`` puts back
rows whose job was lost.

Dependency order of the engine (each imports only those before it): models, errors ->
selectors -> pricing -> lines -> dispatch, fulfilment -> services. Dispatch imports only the models:
it moves claims, never a status.
"""

import secrets
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from audit import services as audit
from orders.models import Order, VendorOrder
from portal import worker

JOB = "orders.jobs.advance_vendor_order"


def claim_and_enqueue(ids) -> int:
    """Queue one job for each due supplier order that this call manages to claim. Each claim
    carries a new token, handed to the job: the job acts only while the row still holds it."""
    queue = django_rq.get_queue("orders")
    now = timezone.now()
    queued = 0
    for pk in ids:
        token = secrets.token_hex(8)
        claimed = VendorOrder.objects.filter(pk=pk, next_poll_at__lte=now).update(
            next_poll_at=None, claimed_at=now, claim_token=token
        )
        if claimed:
            queue.enqueue(JOB, pk, token, job_id=job_id(pk, token), result_ttl=0, failure_ttl=86400)
            queued += 1
    return queued


def job_id(vendor_order_id: int, claim: str) -> str:
    """One job id per claim: a job given back and its successor never share one."""
    return f"vendor-order-{vendor_order_id}-{claim}"


def dispatch_due(limit: int = 1000) -> int:
    due = VendorOrder.objects.filter(next_poll_at__lte=timezone.now()).order_by("next_poll_at")
    return claim_and_enqueue(list(due.values_list("pk", flat=True)[:limit]))


CLAIM_GRACE = 5  # seconds between a claim and its job reaching the queue


def _job_lost(vo: VendorOrder, queued: set[str], beats: dict[str, float]) -> str:
    """Why the job holding ``vo`` is lost ("" while it lives): gone from Redis, dequeued but
    never started, or started by a worker whose heartbeat stopped."""
    try:
        job = Job.fetch(job_id(vo.pk, vo.claim_token),
                        connection=django_rq.get_connection("orders"))
    except NoSuchJobError:
        return "gone from Redis"
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED:
        return "" if job.id in queued else "dequeued but never started"
    if status in (JobStatus.SCHEDULED, JobStatus.DEFERRED):
        return ""
    if status == JobStatus.STARTED:
        if worker.is_alive(beats.get(job.worker_name or "")):
            return ""
        return f"its worker {job.worker_name} stopped beating"
    return f"it ended {status} without letting go"


def sweep() -> dict[str, int]:
    """Self-healing: give back every supplier order whose job was lost, then dispatch.

    A claim older than ``CLAIM_GRACE`` is checked against RQ and the workers' heartbeats, so a
    job lost to a killed worker or a Redis flush is found within the sweep's interval plus
    ``WORKER_HEARTBEAT_MAX_AGE``; one older than ``ORDER_CLAIM_TIMEOUT`` is given back in any
    case. Giving back clears the claim token: a job that resumes afterwards cannot act."""
    now = timezone.now()
    claimed = list(VendorOrder.objects.filter(
        status__in=VendorOrder.Status.OPEN, next_poll_at__isnull=True,
        claimed_at__lt=now - timedelta(seconds=CLAIM_GRACE),
    ))
    if not claimed:
        return {"recovered": 0, "dispatched": dispatch_due()}
    queue = django_rq.get_queue("orders")
    queued, beats = set(queue.get_job_ids()), worker.heartbeats(queue.connection)
    timeout = now - timedelta(seconds=settings.ORDER_CLAIM_TIMEOUT)
    lost = 0
    for vo in claimed:
        reason = _job_lost(vo, queued, beats) or (
            "held longer than ORDER_CLAIM_TIMEOUT" if vo.claimed_at < timeout else ""
        )
        if not reason:
            continue
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=vo.order_id)
            if VendorOrder.objects.filter(pk=vo.pk, claim_token=vo.claim_token,
                                          next_poll_at__isnull=True).update(
                next_poll_at=timezone.now(), claimed_at=None, claim_token=""
            ):
                lost += 1
                audit.record(
                    action=audit.Action.STATUS_CHANGED, target=vo, order=order,
                    message=f"{vo.client_reference}: its job was lost ({reason}; {vo.status}, "
                    f"claimed {(now - vo.claimed_at).total_seconds():.0f}s ago); queued again",
                )
    return {"recovered": lost, "dispatched": dispatch_due()}
