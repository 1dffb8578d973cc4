"""Sealing voucher codes into their rows, and opening them again.

``open_voucher`` is for the reveal and export services only: nothing else decrypts a code.
Each field's ciphertext is bound to its voucher id and field name.
"""

from dataclasses import dataclass, field

from common.crypto import Keyring, default_keyring
from orders.models import Voucher

SEALED_FIELDS = ("code", "pin", "claim_url")


def context(voucher: Voucher, name: str) -> str:
    return f"orders.voucher:{voucher.pk}:{name}"


def seal(
    voucher: Voucher, *, code: str, pin: str = "", claim_url: str = "",
    keyring: Keyring | None = None,
) -> None:
    """Encrypt the secrets into ``voucher`` (unsaved changes) and set its index and last four."""
    keyring = keyring or default_keyring()
    values = {"code": code, "pin": pin, "claim_url": claim_url}
    for name in SEALED_FIELDS:
        value = values[name]
        token = keyring.encrypt(value, context=context(voucher, name)) if value else ""
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
    values = {
        name: keyring.decrypt(token, context=context(voucher, name)) if token else ""
        for name in SEALED_FIELDS
        if (token := getattr(voucher, f"{name}_encrypted")) is not None
    }
    return VoucherSecrets(**values)


def reseal(voucher: Voucher, *, keyring: Keyring | None = None) -> bool:
    """Re-encrypt with the current key; False when the voucher already uses it."""
    keyring = keyring or default_keyring()
    if voucher.key_version == keyring.current_version:
        return False
    secrets = open_voucher(voucher, keyring=keyring)
    seal(voucher, code=secrets.code, pin=secrets.pin, claim_url=secrets.claim_url,
         keyring=keyring)
    return True
