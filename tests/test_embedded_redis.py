"""The embedded Redis keeps its data across a restart: an append-only file under VAR_DIR."""

import redis

from portal import embedded_redis


def test_it_persists_to_an_append_only_file_and_keeps_a_key_across_a_restart(tmp_path):
    socket = tmp_path / "redis.sock"
    process = embedded_redis.start(socket)
    try:
        conn = redis.Redis(unix_socket_path=str(socket))
        assert conn.config_get("appendonly") == {"appendonly": "yes"}
        assert conn.config_get("dir") == {"dir": str(tmp_path)}
        assert conn.config_get("save") == {"save": "60 1"}
        conn.set("kept", "across restarts")
        conn.save()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (tmp_path / "redis.aof").stat().st_size > 0
    for name in ("redis.aof", "redis.rdb"):  # in a directory that was there before
        assert (tmp_path / name).stat().st_mode & 0o077 == 0, name

    process = embedded_redis.start(socket)
    try:
        conn = redis.Redis(unix_socket_path=str(socket))
        assert conn.get("kept") == b"across restarts"
    finally:
        process.terminate()
        process.wait(timeout=10)
