"""Encryption of voucher codes and supplier credentials at rest.

AES-256-GCM with a random 96-bit nonce. The associated data names the row and field a
ciphertext belongs to, so a ciphertext copied to another row or field fails to decrypt.
Keys are versioned: a token is ``<version>:<base64(nonce + ciphertext)>`` and the first key of
``VOUCHER_KEYS`` encrypts, while every listed key still decrypts (``rotate_voucher_keys``
re-encrypts old tokens). A separate HMAC key gives the blind index, so an exact code can be
found or recognised as a duplicate without decrypting anything.

This module imports nothing of the project.
"""

import base64
import binascii
import functools
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class CryptoError(Exception):
    """A key is malformed or a token does not decrypt: wrong key, tampered, or moved."""


def _decode_key(text: str, what: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error as exc:
        raise CryptoError(f"{what} is not valid base64") from exc
    if len(key) != 32:
        raise CryptoError(f"{what} must be 32 bytes (base64 of 32 random bytes)")
    return key


def parse_keys(setting: str) -> tuple[int, dict[int, bytes]]:
    """Parse ``VOUCHER_KEYS`` (``"2:<b64>,1:<b64>"``): the current version and all keys."""
    keys: dict[int, bytes] = {}
    current = None
    for item in filter(None, (part.strip() for part in setting.split(","))):
        version_text, sep, key_text = item.partition(":")
        if not sep or not version_text.isdigit():
            raise CryptoError("VOUCHER_KEYS entries look like <version>:<base64 key>")
        version = int(version_text)
        if version in keys:
            raise CryptoError(f"VOUCHER_KEYS lists version {version} twice")
        keys[version] = _decode_key(key_text, f"VOUCHER_KEYS version {version}")
        current = version if current is None else current
    if current is None:
        raise CryptoError("VOUCHER_KEYS holds no key")
    return current, keys


def parse_index_key(setting: str) -> bytes:
    """Parse ``VOUCHER_INDEX_KEY``: base64 of 32 bytes."""
    return _decode_key(setting, "VOUCHER_INDEX_KEY")


class Keyring:
    def __init__(self, *, voucher_keys: str, index_key: str) -> None:
        self.current_version, keys = parse_keys(voucher_keys)
        # One cipher object per key, made once: an export decrypts hundreds of thousands of
        # fields. AESGCM keeps no state between calls; every call still takes its own nonce.
        self._aeads = {version: AESGCM(key) for version, key in keys.items()}
        self._index_key = parse_index_key(index_key)

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[self.current_version].encrypt(
            nonce, plaintext.encode(), context.encode())
        return f"{self.current_version}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, context: str) -> str:
        version, body = _split(token)
        aead = self._aeads.get(version)
        if aead is None:
            raise CryptoError(f"no key with version {version} is configured")
        try:
            # base64.b64decode(..., validate=True) without its wrapper: the same strict check.
            raw = binascii.a2b_base64(body, strict_mode=True)
            plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except (binascii.Error, InvalidTag, ValueError) as exc:
            raise CryptoError("ciphertext does not decrypt with its key and context") from exc
        return plain.decode()

    def version_of(self, token: str) -> int:
        return _split(token)[0]

    def needs_rotation(self, token: str) -> bool:
        return self.version_of(token) != self.current_version

    def blind_index(self, code: str) -> str:
        """Keyed hash of a code, the same for the same code whatever its spacing or case."""
        return hmac.new(self._index_key, normalise_code(code).encode(), hashlib.sha256).hexdigest()


def _split(token: str) -> tuple[int, str]:
    """A token's key version and its base64 text."""
    version_text, sep, body = token.partition(":")
    if not sep or not version_text.isdigit():
        raise CryptoError("not an encrypted token")
    return int(version_text), body


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch not in " -\t\r\n")


@functools.cache
def default_keyring() -> Keyring:
    from django.conf import settings

    return Keyring(voucher_keys=settings.VOUCHER_KEYS, index_key=settings.VOUCHER_INDEX_KEY)
