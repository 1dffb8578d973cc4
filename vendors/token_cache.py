"""The adapters' shared cache, sealed: supplier access and refresh tokens never reach Redis in
plaintext.

Every value is JSON, encrypted with the voucher keyring (AES-GCM, common.crypto) under
associated data naming its cache key, so a value copied to another key does not decrypt. A
value that does not decrypt (a key removed from ``VOUCHER_KEYS``, a tampered entry) is a miss:
the adapter logs in again.
"""

import json
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from common.crypto import CryptoError, Keyring, default_keyring
from vendors.adapters.base import TokenCache


class SealedCache:
    """A TokenCache over another one (Django's cache), storing only ciphertext."""

    def __init__(self, cache: TokenCache, keyring: Keyring | None = None) -> None:
        self._cache = cache
        self._keyring = keyring

    @property
    def keyring(self) -> Keyring:
        return self._keyring or default_keyring()

    @staticmethod
    def _context(key: str) -> str:
        return f"cache:{key}"

    def get(self, key: str, default: Any = None) -> Any:
        sealed = self._cache.get(key)
        if not isinstance(sealed, str):
            return default
        try:
            return json.loads(self.keyring.decrypt(sealed, context=self._context(key)))
        except (CryptoError, ValueError):
            return default

    def set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> None:
        sealed = self.keyring.encrypt(json.dumps(value), context=self._context(key))
        self._cache.set(key, sealed, timeout=timeout)

    def delete(self, key: str) -> Any:
        return self._cache.delete(key)
