"""RQ entry points for orders: thin, taking ids and calling services."""

from orders import services


def advance_vendor_order(vendor_order_id: int, claim: str | None = None) -> str:
    return services.advance(vendor_order_id=vendor_order_id, claim=claim)


def dispatch_due() -> int:
    return services.dispatch_due()


def sweep() -> dict[str, int]:
    return services.sweep()
