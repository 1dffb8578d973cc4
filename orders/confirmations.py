"""Confirmation tokens: one per confirmation page, good for one order by the user it was
issued to.

A token is ``<nonce><issued><mac>``: 32 random hex digits, the issue time (13 digits, Unix
milliseconds) and an HMAC (``SECRET_KEY``) of the user's id, the nonce and the time. The nonce is
what the order stores under a unique constraint (``Order.confirmation_token``); the MAC binds
it to the user, so nobody else can present it, and nobody can guess one.
"""

import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "orders.confirmation"
MAX_AGE = 24 * 3600
_TOKEN = re.compile(r"^([0-9a-f]{32})([0-9]{13})([0-9a-f]{64})$")


class InvalidConfirmation(Exception):
    """Not a token issued to this user, or too old."""


@dataclass(frozen=True)
class Confirmation:
    nonce: str
    issued_at: datetime


def _mac(user_pk: int, nonce: str, issued: str) -> str:
    return salted_hmac(SALT, f"{user_pk}:{nonce}:{issued}", algorithm="sha256").hexdigest()


def issue(user) -> str:
    nonce, issued = secrets.token_hex(16), f"{int(time.time() * 1000):013d}"
    return f"{nonce}{issued}{_mac(user.pk, nonce, issued)}"


def open_token(user, token: str) -> Confirmation:
    """The confirmation ``token`` stands for, when it was issued to ``user`` within MAX_AGE."""
    match = _TOKEN.match(token or "")
    if not match:
        raise InvalidConfirmation("not a confirmation token")
    nonce, issued, mac = match.groups()
    if not constant_time_compare(mac, _mac(user.pk, nonce, issued)):
        raise InvalidConfirmation("not issued to this user")
    if time.time() - int(issued) / 1000 > MAX_AGE:
        raise InvalidConfirmation("expired")
    return Confirmation(nonce=nonce, issued_at=datetime.fromtimestamp(int(issued) / 1000, tz=UTC))
