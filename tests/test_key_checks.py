"""Malformed voucher keys stop `manage.py check` and every process; supplier tokens are
sealed in the cache."""

import base64
import json

import pytest
from django.core.cache import cache

from common.crypto import Keyring
from portal.checks import key_problems, running_check_command
from tests.conftest import MemoryCache
from tests.test_settings import KEY, PRODUCTION, manage
from vendors.services import vendor_set_credentials
from vendors.token_cache import SealedCache

SHORT = base64.b64encode(b"s" * 16).decode()
OTHER = base64.b64encode(b"o" * 32).decode()
MALFORMED = {
    "bad base64": ({"VOUCHER_KEYS": "1:not*base64!"}, "VOUCHER_KEYS version 1 is not valid base64"),
    "wrong length": ({"VOUCHER_KEYS": f"1:{SHORT}"}, "VOUCHER_KEYS version 1 must be 32 bytes"),
    "duplicate version": ({"VOUCHER_KEYS": f"2:{KEY},2:{OTHER}"},
                          "VOUCHER_KEYS lists version 2 twice"),
    "missing version": ({"VOUCHER_KEYS": OTHER}, "VOUCHER_KEYS entries look like"),
    "empty version": ({"VOUCHER_KEYS": f":{OTHER}"}, "VOUCHER_KEYS entries look like"),
    "bad index key": ({"VOUCHER_INDEX_KEY": "%%%"}, "VOUCHER_INDEX_KEY is not valid base64"),
    "short index key": ({"VOUCHER_INDEX_KEY": SHORT}, "VOUCHER_INDEX_KEY must be 32 bytes"),
}
# Every secret the cases use: none may be printed.
SECRETS = (KEY, OTHER, SHORT, "not*base64!")


def assert_no_key_in(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{len(leaked)} key(s) printed"


@pytest.mark.parametrize("case", MALFORMED)
def test_it_fails_the_system_check_on_malformed_keys(case, tmp_path):
    env, message = MALFORMED[case]
    result = manage("check", env={**PRODUCTION, **env}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "SystemCheckError" in result.stderr
    assert f"(portal.E001) {message}" in result.stderr
    assert_no_key_in(result.stdout + result.stderr)


@pytest.mark.parametrize("case", ["bad base64", "short index key"])
@pytest.mark.parametrize("process", [
    ("rqworker", "orders", "polling", "sync", "default"),
    ("rqcron", "portal.cron"),
    ("migrate",),
])
def test_it_refuses_to_start_a_process_on_malformed_keys(case, process, tmp_path):
    env, message = MALFORMED[case]
    result = manage(*process, env={**PRODUCTION, **env}, tmp_path=tmp_path)
    assert result.returncode != 0
    first = result.stderr.splitlines()[0]
    assert first.startswith(message) and first.endswith("; refusing to start.")
    assert_no_key_in(result.stdout + result.stderr)


def test_it_refuses_to_start_the_web_application_on_malformed_keys(tmp_path):
    import os
    import subprocess
    import sys

    from portal.paths import BASE_DIR

    env, message = MALFORMED["wrong length"]
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION}
    result = subprocess.run(
        [sys.executable, "-c", "import portal.wsgi"], cwd=BASE_DIR, capture_output=True,
        text=True, timeout=60, env={**base, "VAR_DIR": str(tmp_path), **PRODUCTION, **env},
    )
    assert result.returncode != 0
    assert result.stderr.splitlines()[0].startswith(message)
    assert_no_key_in(result.stderr)


def test_it_names_every_problem_at_once():
    problems = key_problems(f"1:{SHORT}", "%%%")
    assert problems == ["VOUCHER_KEYS version 1 must be 32 bytes (base64 of 32 random bytes)",
                        "VOUCHER_INDEX_KEY is not valid base64"]
    assert key_problems(f"2:{OTHER},1:{KEY}", base64.b64encode(b"i" * 32).decode()) == []


def test_it_reports_rather_than_refuses_only_for_the_check_command():
    assert running_check_command(["manage.py", "check", "--deploy"])
    assert not running_check_command(["manage.py", "rqworker", "check"])
    assert not running_check_command(["gunicorn", "check"])


# Supplier tokens in the cache


def keyring() -> Keyring:
    return Keyring(voucher_keys=f"1:{KEY}", index_key=OTHER)


def test_it_seals_cached_values_to_their_key():
    raw = MemoryCache()
    sealed = SealedCache(raw, keyring())
    sealed.set("kalixo_v1:7:tokens", {"access": "at-123", "renew_at": 1.5}, timeout=60)
    assert "at-123" not in json.dumps(raw.data)
    assert sealed.get("kalixo_v1:7:tokens") == {"access": "at-123", "renew_at": 1.5}
    raw.data["kalixo_v1:8:tokens"] = raw.data["kalixo_v1:7:tokens"]  # moved to another key
    assert sealed.get("kalixo_v1:8:tokens", "miss") == "miss"
    raw.data["plain"] = {"access": "at-123"}  # a plaintext entry from before: a miss
    assert sealed.get("plain") is None


def redis_text(conn) -> bytes:
    """Every key and value Redis holds, as one byte string."""
    chunks = []
    for key in conn.scan_iter(count=1000):
        chunks.append(key)
        kind = conn.type(key)
        if kind == b"string":
            chunks.append(conn.get(key))
        elif kind == b"hash":
            chunks.extend(b"%s=%s" % item for item in conn.hgetall(key).items())
        elif kind == b"list":
            chunks.extend(conn.lrange(key, 0, -1))
        elif kind == b"set":
            chunks.extend(conn.smembers(key))
        elif kind == b"zset":
            chunks.extend(conn.zrange(key, 0, -1))
    return b"\n".join(chunks)


@pytest.mark.parametrize("kind, credentials, token_fields", [
    ("kalixo_v1", None, ("access", "refresh")),
    ("starship", lambda t: {"username": f"sandbox_{t}", "password": "sandbox"},
     ("access_token", "refresh_token")),
])
def test_it_keeps_supplier_tokens_out_of_redis_in_plaintext(kind, credentials, token_fields,
                                                            sandbox_vendor, redis_conn,
                                                            unique):
    from orders.balances import sync_balances
    from vendors.services import sync_catalog

    vendor = sandbox_vendor(kind)  # logs in over HTTP for kalixo_v1
    if credentials is not None:
        vendor_set_credentials(vendor=vendor, credentials=credentials(unique))
        sync_catalog(vendor=vendor)
        sync_balances(vendor=vendor)
    tokens = SealedCache(cache).get(f"{kind}:{vendor.pk}:tokens")
    assert isinstance(tokens, dict)
    secrets = [tokens[field] for field in token_fields]
    assert all(isinstance(s, str) and len(s) >= 8 for s in secrets)
    held = redis_text(redis_conn)
    assert f"{kind}:{vendor.pk}:tokens".encode() in held  # the entry is there, sealed
    leaked = [s for s in secrets if s.encode() in held]
    assert not leaked, f"{len(leaked)} supplier token(s) in Redis in plaintext"
