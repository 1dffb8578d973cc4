"""The portal's RQ worker: jobs run in the worker's own process, with a heartbeat that tells
whether it lives.

RQ's default worker forks a work horse for every job. The portal's jobs mostly wait on a
supplier's answer, and a fork costs more CPU than the job (about 40 ms against 25 ms on the
benchmark machine, ``make bench ARGS=throughput``), so four workers on two cores were bound by
forking, not by the suppliers. ``PortalWorker`` runs each job in its own process (RQ's
``SimpleWorker``), keeps its database connection between jobs (``CONN_MAX_AGE``, closed when
broken or too old, as a request would) and beats from a thread while a job runs. A job that
kills the process loses only that job: the sweep gives its supplier orders back.

RQ keeps its workers in the ``rq:workers`` set, which a running worker does not re-create after
a Redis flush, and beats about every seven minutes while idle. ``PortalWorker`` beats every
``WORKER_HEARTBEAT_INTERVAL`` seconds, idle or busy, and writes each beat into one hash of its
own (worker name -> Unix time): the next beat after a flush re-creates it. ``/healthz`` and the
sweep (which gives back the supplier orders of a dead worker's job) read it.

RQ's worker listens for commands on a pub/sub thread that waits up to 60 seconds for a message.
RQ stops it by sending UNSUBSCRIBE and then clearing the thread's running flag; when the thread
reads the reply before the flag is cleared, it goes back to waiting, now for a subscription that
never comes. redis-py 7 left it there (RQ's join gave up after a second, every burst worker
left a thread behind); redis-py 8's ``PubSubWorkerThread.stop()`` joins the thread without a
bound, so each stop of a worker, burst or warm shutdown, could take the full minute.
``PortalWorker.unsubscribe`` clears the flag first, so the reply always ends the thread.
"""

import logging
import threading
import time

import django_rq
from django.conf import settings
from django.db import close_old_connections
from redis import RedisError
from rq import SimpleWorker

HEARTBEATS = "portal:worker-heartbeats"

logger = logging.getLogger(__name__)


class PortalWorker(SimpleWorker):
    """Set as ``RQ["WORKER_CLASS"]``, so ``manage.py rqworker`` runs it."""

    def __init__(self, *args, **kwargs) -> None:
        interval = settings.WORKER_HEARTBEAT_INTERVAL
        # RQ waits on its queues for worker_ttl - 15 seconds between beats when idle; the
        # heartbeat thread beats every job_monitoring_interval while a job runs.
        kwargs["worker_ttl"] = interval + 15
        kwargs["job_monitoring_interval"] = interval
        super().__init__(*args, **kwargs)

    def execute_job(self, job, queue) -> None:
        stop = threading.Event()
        beating = threading.Thread(target=self._beat_until, args=(stop,), daemon=True,
                                   name=f"{self.name}-heartbeat")
        close_old_connections()
        beating.start()
        try:
            super().execute_job(job, queue)
        finally:
            stop.set()
            beating.join()
            close_old_connections()

    def _beat_until(self, stop: threading.Event) -> None:
        while not stop.wait(self.job_monitoring_interval):
            try:
                self.heartbeat()
            except RedisError as exc:  # the next beat tries again; the job goes on
                logger.warning("worker %s could not beat: %s", self.name, exc)

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        super().heartbeat(timeout, pipeline)
        connection = pipeline if pipeline is not None else self.connection
        connection.hset(HEARTBEATS, self.name, f"{time.time():.3f}")

    def unsubscribe(self) -> None:
        thread = self.pubsub_thread
        if thread is None:
            return
        # redis-py offers no way to ask the loop to end without also waiting for it (8.x), so
        # the flag is cleared directly; the reply to UNSUBSCRIBE then wakes a loop that ends.
        thread._running.clear()
        self.pubsub.unsubscribe()
        thread.join(timeout=5)
        self.pubsub.close()
        if thread.is_alive():
            logger.warning("worker %s: its pub/sub thread did not stop", self.name)

    def register_death(self) -> None:
        super().register_death()
        self.connection.hdel(HEARTBEATS, self.name)


def heartbeats(connection=None) -> dict[str, float]:
    """Each worker's last beat (Unix time), from the portal's own hash."""
    connection = connection or django_rq.get_connection("default")
    return {name.decode(): float(beat) for name, beat in connection.hgetall(HEARTBEATS).items()}


def is_alive(beat: float | None) -> bool:
    return beat is not None and time.time() - beat <= settings.WORKER_HEARTBEAT_MAX_AGE


def live_workers(connection=None) -> list[str]:
    """The names of the workers that beat recently enough."""
    return [name for name, beat in heartbeats(connection).items() if is_alive(beat)]
