"""Sealing voucher codes into their rows, and opening them again.

``open_voucher`` and ``open_field`` are for the reveal and export services only: nothing else
decrypts a code.
Each field's ciphertext is bound to its voucher id and field name.
"""

import uuid
from dataclasses import dataclass, field

from common.crypto import Keyring, default_keyring
from orders.models import Voucher

SEALED_FIELDS = ("code", "pin", "claim_url")


def context(voucher_id: uuid.UUID | str, name: str) -> str:
    return f"orders.voucher:{voucher_id}:{name}"


def seal(
    voucher: Voucher, *, code: str, pin: str = "", claim_url: str = "",
    keyring: Keyring | None = None,
) -> None:
    """Encrypt the secrets into ``voucher`` (unsaved changes) and set its index and last four."""
    keyring = keyring or default_keyring()
    values = {"code": code, "pin": pin, "claim_url": claim_url}
    for name in SEALED_FIELDS:
        value = values[name]
        token = keyring.encrypt(value, context=context(voucher.pk, name)) if value else ""
        setattr(voucher, f"{name}_encrypted", token)
    voucher.code_index = keyring.blind_index(code)
    voucher.last4 = code.strip()[-4:]
    voucher.key_version = keyring.current_version


@dataclass(frozen=True)
class VoucherSecrets:
    code: str = field(repr=False)
    pin: str = field(default="", repr=False)
    claim_url: str = field(default="", repr=False)


def open_voucher(voucher: Voucher, *, keyring: Keyring | None = None) -> VoucherSecrets:
    keyring = keyring or default_keyring()
    return VoucherSecrets(**{
        name: open_field(voucher.pk, name, getattr(voucher, f"{name}_encrypted"),
                         keyring=keyring)
        for name in SEALED_FIELDS
    })


def open_field(voucher_id: uuid.UUID | str, name: str, token: str | None, *,
               keyring: Keyring) -> str:
    """One sealed field (``name`` of ``SEALED_FIELDS``) of the voucher ``voucher_id``, from
    the value of its ``<name>_encrypted`` column: for the export, which reads the columns
    without making a ``Voucher`` of each row."""
    return keyring.decrypt(token, context=context(voucher_id, name)) if token else ""


def reseal(voucher: Voucher, *, keyring: Keyring | None = None) -> bool:
    """Re-encrypt with the current key; False when the voucher already uses it."""
    keyring = keyring or default_keyring()
    if voucher.key_version == keyring.current_version:
        return False
    secrets = open_voucher(voucher, keyring=keyring)
    seal(voucher, code=secrets.code, pin=secrets.pin, claim_url=secrets.claim_url,
         keyring=keyring)
    return True
