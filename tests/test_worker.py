"""The portal's worker runs jobs in its own process and beats while a job runs."""

import os
import time

import django_rq
from rq import get_current_job

from portal.worker import PortalWorker, heartbeats


def beat_while_busy(seconds: float) -> dict:
    """A job that outlasts a heartbeat interval: what its worker beat meanwhile."""
    started = time.time()
    time.sleep(seconds)
    return {"pid": os.getpid(), "started": started,
            "beat": heartbeats().get(get_current_job().worker_name)}


def test_it_runs_each_job_in_its_own_process_and_beats_meanwhile(settings, redis_conn):
    settings.WORKER_HEARTBEAT_INTERVAL = 1
    queue = django_rq.get_queue("default")
    job = queue.enqueue(beat_while_busy, 2.5)
    PortalWorker([queue], connection=redis_conn, name="beating-test-worker").work(
        burst=True, with_scheduler=False)
    job.refresh()
    result = job.return_value()
    assert result["pid"] == os.getpid()  # no work horse forked
    assert result["beat"] is not None and result["beat"] >= result["started"] + 1
