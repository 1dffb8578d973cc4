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
