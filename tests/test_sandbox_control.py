import requests


def test_it_serves_the_control_api(sandbox_url, unique):
    assert requests.get(f"{sandbox_url}/_sandbox/health", timeout=5).json()["status"] == "ok"
    faults = {"error_5xx": 2, "latency": 0}
    url = f"{sandbox_url}/_sandbox/kalixo_v2/faults/{unique}"
    assert requests.post(url, json=faults, timeout=5).json() == faults
    assert requests.get(url, timeout=5).json() == faults


def test_it_refuses_faults_that_are_not_an_object(sandbox_url, unique):
    url = f"{sandbox_url}/_sandbox/kalixo_v2/faults/{unique}"
    assert requests.post(url, json=[1], timeout=5).status_code == 400


def test_it_answers_502_to_one_read_in_n_and_429_during_a_burst(sandbox_url, unique):
    import time

    url = f"{sandbox_url}/_sandbox/kalixo_v2/faults/{unique}"
    wallet = f"{sandbox_url}/kalixo-v2/v2/wallet"
    key = {"x-api-key": f"kal_test_{unique}"}
    requests.post(url, json={"error_5xx_every": 5, "rate_limit_per_minute": 100000},
                  timeout=5).raise_for_status()
    statuses = [requests.get(wallet, headers=key, timeout=5).status_code for _ in range(200)]
    assert 15 <= statuses.count(502) <= 70 and statuses.count(502) + statuses.count(200) == 200

    requests.post(url, json={"rate_limited_until": time.time() + 3,
                             "rate_limit_per_minute": 100000}, timeout=5)
    limited = requests.get(wallet, headers=key, timeout=5)
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 3
    time.sleep(3.1)
    assert requests.get(wallet, headers=key, timeout=5).status_code == 200


def test_it_lists_what_each_order_was_charged(sandbox_url, unique):
    answer = requests.get(f"{sandbox_url}/_sandbox/ezcards/charges",
                          params={"account": unique}, timeout=5)
    assert answer.json() == {"orders": [], "balances": answer.json()["opening"],
                             "opening": {"USD": "10000.00", "EUR": "5000.00", "CAD": "5000.00"}}
    missing = requests.get(f"{sandbox_url}/_sandbox/ezcards/charges", timeout=5)
    assert missing.status_code == 400


def test_it_keeps_its_database_to_its_owner(tmp_path, unique):
    """In a directory that was there before, as VAR_DIR usually is."""
    from tests.conftest import free_port
    from vendors.sandbox import server

    state = tmp_path / "sandbox.sqlite3"
    with server.running(free_port(), state=state, log=tmp_path / "sandbox.log") as url:
        requests.get(f"{url}/_sandbox/kalixo_v2/orders", params={"account": unique},
                     timeout=10).raise_for_status()
    made = list(tmp_path.glob("sandbox.sqlite3*"))
    assert state in made
    assert all(path.stat().st_mode & 0o077 == 0 for path in made), made
