"""RQ entry points for orders: thin, taking ids and calling the engine.

``advance_vendor_order``'s dotted path is orders.dispatch.JOB; portal.cron schedules the other
two.
"""

from orders import dispatch, fulfilment


def advance_vendor_order(vendor_order_id: int, claim: str | None = None) -> str:
    return fulfilment.advance(vendor_order_id=vendor_order_id, claim=claim)


def dispatch_due() -> int:
    return dispatch.dispatch_due()


def sweep() -> dict[str, int]:
    return dispatch.sweep()
