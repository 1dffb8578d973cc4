"""Starship's webhooks, as pure functions: checking a delivery's signature and reading its event.

Documented [vendor docs, Starship]: events ``order.created``, ``order.pending``,
``order.delivered``, ``order.partially_delivered`` and ``order.cancelled``; each delivery is
signed, ``X-Signature`` being the hex HMAC-SHA256, keyed with the account's webhook secret, of
``X-Timestamp + "." + body``; an answer other than 2xx is retried at 30 s, 2 min, 10 min, 1 h
and 6 h. The body's shape is not documented beyond that, so the event is read leniently: its
id from ``id`` or ``event_id``, its name from ``event`` or ``type``, the supplier's order id
from ``data.id``, ``data.order_id`` or ``order_id``. An event without an id is known by the
digest of its body, which a retry repeats byte for byte.

An event is only a hint: what it says of the order, vouchers included, is never used; the
portal polls the order through the API. Nothing here logs.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
TOLERANCE = 300  # seconds a delivery's timestamp may be from our clock: older is a replay
EVENTS = frozenset({"order.created", "order.pending", "order.delivered",
                    "order.partially_delivered", "order.cancelled"})
# Events after which the order may have changed in a way the portal acts on: worth a poll.
NEWS = frozenset({"order.delivered", "order.partially_delivered", "order.cancelled"})


class Refused(Exception):
    """A delivery the portal does not accept; ``status`` is the HTTP answer (401: not signed
    by the account's secret; 400: stale or unreadable)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class Event:
    event_id: str
    name: str
    supplier_order_id: str

    @property
    def is_news(self) -> bool:
        return self.name in NEWS


def signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 Starship sends in ``X-Signature``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(*, secret: str, timestamp: str, signature_header: str, body: bytes,
           now: float) -> None:
    """Raise Refused unless ``body`` was signed with ``secret`` at ``timestamp`` (unix
    seconds) within TOLERANCE of ``now``. The signature is checked first: an unsigned
    stranger learns nothing about our clock."""
    expected = signature(secret=secret, timestamp=timestamp, body=body)
    if not timestamp or not hmac.compare_digest(expected, signature_header.strip().lower()):
        raise Refused("bad signature", 401)
    try:
        sent = int(timestamp)
    except ValueError as exc:
        raise Refused("timestamp is not unix seconds", 400) from exc
    if abs(now - sent) > TOLERANCE:
        raise Refused("timestamp outside the 5-minute window", 400)


def parse(body: bytes) -> Event:
    """The event a (verified) body carries; Refused (400) when it names no order."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise Refused("body is not JSON", 400) from exc
    if not isinstance(doc, dict):
        raise Refused("body is not a JSON object", 400)
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    order_id = next((v for v in (data.get("id"), data.get("order_id"), doc.get("order_id"))
                     if isinstance(v, int | str) and not isinstance(v, bool) and str(v)), None)
    if order_id is None:
        raise Refused("the event names no order", 400)
    event_id = doc.get("id") or doc.get("event_id") or hashlib.sha256(body).hexdigest()
    name = str(doc.get("event") or doc.get("type") or "").strip().lower()
    return Event(event_id=str(event_id)[:128], name=name[:64],
                 supplier_order_id=str(order_id)[:100])
