"""The portal's worker runs jobs in its own process, beats while a job runs, and stops at once."""

import multiprocessing
import os
import signal
import time

import django_rq
import pytest
from redis.client import PubSub
from rq import get_current_job

from portal.worker import PortalWorker, heartbeats
from tests.test_recovery import start_worker


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


def stop_bursts(queue, unsubscribe) -> None:
    """In a child process: three burst workers, each stopping with ``unsubscribe`` in place of
    redis-py's; exit 0 when each left no listener thread behind."""
    PubSub.unsubscribe = unsubscribe
    connection = django_rq.get_connection("default")
    for _ in range(3):
        queue.enqueue(os.getpid)
        worker = PortalWorker([queue], connection=connection)
        worker.work(burst=True, with_scheduler=False)
        if worker.pubsub_thread.is_alive():
            os._exit(1)
    os._exit(0)


send_unsubscribe = PubSub.unsubscribe


def unsubscribe_and_yield(self, *args):
    answer = send_unsubscribe(self, *args)
    time.sleep(0.2)  # the listener thread reads the reply meanwhile
    return answer


def test_it_stops_at_once_when_its_listener_reads_the_unsubscribe_reply_first(redis_conn):
    """RQ's own stop (UNSUBSCRIBE, then the thread's flag) loses this race: its listener then
    waits 60 s for a subscription, which redis-py 8 joins (a burst worker hung a minute) and
    redis-py 7 left behind after a second. In a child process, so a hang fails in seconds
    (RQ's job timeouts reset pytest-timeout's alarm in this one)."""
    child = multiprocessing.get_context("fork").Process(
        target=stop_bursts, args=(django_rq.get_queue("default"), unsubscribe_and_yield))
    child.start()
    child.join(timeout=15)
    if child.is_alive():
        child.kill()
        pytest.fail("the worker hung while stopping its pub/sub listener")
    assert child.exitcode == 0, "a stopped worker left its pub/sub listener running"


@pytest.mark.timeout(60)
def test_it_shuts_down_warmly_on_sigterm(settings, redis_conn):
    """What a deploy does: SIGTERM, then a kill if the worker has not left within seconds."""
    process = start_worker(settings, "default")
    deadline = time.monotonic() + 30
    while not heartbeats(redis_conn):
        assert process.poll() is None and time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert heartbeats(redis_conn) == {}  # it said goodbye: no dead worker left to find
