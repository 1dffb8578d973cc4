"""Production settings: refuse to start without secrets, and pass Django's deploy checks."""

import base64
import os
import subprocess
import sys

from portal.paths import BASE_DIR

KEY = base64.b64encode(b"k" * 32).decode()
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-production-secret-key-that-is-long-and-random-0123456789-abcdefghij",
    "VOUCHER_KEYS": f"1:{KEY}",
    "VOUCHER_INDEX_KEY": KEY,
    "ALLOWED_HOSTS": "portal.example.com",
    "REDIS_URL": "redis://127.0.0.1:6399/0",
}


def manage(*args: str, env: dict[str, str | None], tmp_path) -> subprocess.CompletedProcess:
    """Run manage.py with ``env`` over this process's environment; a None value unsets."""
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION}
    merged = {**base, "VAR_DIR": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, capture_output=True, text=True,
        env={k: v for k, v in merged.items() if v is not None}, timeout=60,
    )


def test_it_refuses_to_start_in_production_without_a_secret_key(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        "SECRET_KEY must be set when DEBUG is off; refusing to start."
    )
    assert not (tmp_path / "secret_key").exists()


def test_it_refuses_to_start_in_production_without_voucher_keys(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != "VOUCHER_KEYS"}
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "VOUCHER_KEYS must be set when DEBUG is off" in result.stderr.splitlines()[0]


def test_it_passes_the_deploy_checks_in_production(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION,
                    tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_it_generates_local_secrets_once_with_owner_only_permissions(tmp_path):
    env = {"DEBUG": "true", "REDIS_URL": "redis://127.0.0.1:6399/0"}
    first = manage("check", env=env, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    secrets = {name: (tmp_path / name).read_text()
               for name in ("secret_key", "voucher_keys", "voucher_index_key")}
    for name in secrets:
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    manage("check", env=env, tmp_path=tmp_path)
    assert secrets == {name: (tmp_path / name).read_text() for name in secrets}


def test_it_creates_the_var_dir_and_the_sqlite_file_owner_only(tmp_path):
    var = tmp_path / "fresh" / "var"
    # The embedded default, also when the suite itself runs on PostgreSQL.
    env = {"DEBUG": "true", "REDIS_URL": "redis://127.0.0.1:6399/0", "DATABASE_URL": None}
    previous = os.umask(0o022)  # the usual umask, which would give 0755 and 0644
    try:
        result = manage("migrate", env=env, tmp_path=var)
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr
    assert var.stat().st_mode & 0o777 == 0o700
    database = var / "portal.sqlite3"
    assert database.stat().st_size > 0  # migrated: the file SQLite wrote to
    for path in (database, var / "portal.sqlite3-wal", var / "portal.sqlite3-shm"):
        if path.exists():
            assert path.stat().st_mode & 0o777 == 0o600, path.name


def test_it_refuses_to_start_with_a_malformed_spend_limit(tmp_path):
    result = manage("check", env={**PRODUCTION, "ORDER_DAILY_CAP_PER_USER": "GBP:lots"},
                    tmp_path=tmp_path)
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        "ORDER_DAILY_CAP_PER_USER is malformed (not an amount: 'lots'); refusing to start."
    )
