import pytest
from rq import Worker


@pytest.fixture
def live_worker(redis_conn):
    """A real RQ worker registration with a fresh heartbeat, as a running worker keeps it."""
    worker = Worker(["default"], connection=redis_conn, name="healthz-test-worker")
    worker.register_birth()
    worker.heartbeat()
    yield worker
    worker.register_death()


@pytest.mark.django_db
def test_it_answers_200_when_database_redis_and_worker_are_fine(client, live_worker):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_answers_503_naming_the_worker_when_none_is_alive(client, redis_conn):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "fail", "failing": ["worker"]}


@pytest.mark.django_db
def test_it_answers_503_when_the_heartbeat_is_too_old(client, live_worker, settings):
    settings.WORKER_HEARTBEAT_MAX_AGE = -1
    assert client.get("/healthz").json()["failing"] == ["worker"]


@pytest.mark.django_db
def test_it_answers_503_naming_redis_when_redis_is_unreachable(client, settings, tmp_path):
    missing = f"unix://{tmp_path}/nothing.sock?db=0"
    settings.RQ_QUEUES = {name: {"URL": missing} for name in settings.RQ_QUEUES}
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "fail", "failing": ["redis", "worker"]}


def test_it_needs_no_login_and_reveals_nothing_else(client, live_worker, db):
    response = client.get("/healthz")
    assert set(response.json()) == {"status"}
    assert response["Cache-Control"].startswith("max-age=0")
