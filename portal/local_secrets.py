"""Secrets generated once into ``VAR_DIR`` for the embedded (no configuration) mode.

Production never reaches this module: settings refuse to start without explicit secrets there.
"""

import base64
import os
import secrets
from pathlib import Path

from portal.paths import owner_only_dir


def read_or_create(path: Path, make) -> str:
    """Return the secret stored at ``path``, writing ``make()`` there (mode 0600) the first time."""
    owner_only_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        value = make()
        f.write(value + "\n")
    return value


def new_secret_key() -> str:
    return secrets.token_urlsafe(50)


def new_voucher_keys() -> str:
    """A one-key ``VOUCHER_KEYS`` value: ``<version>:<base64 of 32 random bytes>``."""
    return "1:" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_index_key() -> str:
    """A ``VOUCHER_INDEX_KEY`` value: base64 of 32 random bytes."""
    return base64.b64encode(secrets.token_bytes(32)).decode()
