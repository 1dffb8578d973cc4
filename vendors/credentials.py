"""Vendor credentials, stored encrypted and bound to their vendor row."""

import json

from common.crypto import Keyring, default_keyring
from vendors.models import Vendor


def context(vendor: Vendor) -> str:
    return f"vendors.vendor:{vendor.pk}:credentials"


def seal_credentials(vendor: Vendor, credentials: dict[str, str], *,
                     keyring: Keyring | None = None) -> None:
    keyring = keyring or default_keyring()
    vendor.credentials_encrypted = keyring.encrypt(json.dumps(credentials), context=context(vendor))


def open_credentials(vendor: Vendor, *, keyring: Keyring | None = None) -> dict[str, str]:
    if not vendor.credentials_encrypted:
        return {}
    keyring = keyring or default_keyring()
    return json.loads(keyring.decrypt(vendor.credentials_encrypted, context=context(vendor)))


def needs_rotation(vendor: Vendor, keyring: Keyring | None = None) -> bool:
    keyring = keyring or default_keyring()
    return bool(vendor.credentials_encrypted) and keyring.needs_rotation(
        vendor.credentials_encrypted
    )
