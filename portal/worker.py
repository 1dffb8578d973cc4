"""The portal's RQ worker: RQ's forking worker with a heartbeat that tells whether it lives.

RQ keeps its workers in the ``rq:workers`` set, which a running worker does not re-create after
a Redis flush, and beats about every seven minutes while idle. ``PortalWorker`` beats every
``WORKER_HEARTBEAT_INTERVAL`` seconds, idle or busy, and writes each beat into one hash of its
own (worker name -> Unix time): the next beat after a flush re-creates it. ``/healthz`` and the
sweep (which gives back the supplier orders of a dead worker's job) read it.
"""

import time

import django_rq
from django.conf import settings
from rq import Worker

HEARTBEATS = "portal:worker-heartbeats"


class PortalWorker(Worker):
    """Set as ``RQ["WORKER_CLASS"]``, so ``manage.py rqworker`` runs it."""

    def __init__(self, *args, **kwargs) -> None:
        interval = settings.WORKER_HEARTBEAT_INTERVAL
        # RQ waits on its queues for worker_ttl - 15 seconds between beats when idle, and
        # beats every job_monitoring_interval while a job runs.
        kwargs["worker_ttl"] = interval + 15
        kwargs["job_monitoring_interval"] = interval
        super().__init__(*args, **kwargs)

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        super().heartbeat(timeout, pipeline)
        connection = pipeline if pipeline is not None else self.connection
        connection.hset(HEARTBEATS, self.name, f"{time.time():.3f}")

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
