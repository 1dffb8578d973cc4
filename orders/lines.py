"""Adding a priced line to an order: the money set aside, the line, its supplier orders.

One way for every path that adds a line (placing, a top-up, a fallback to the next offer),
inside the caller's transaction. The supplier orders are created unsent; the caller releases
them (makes them due) when the order may be sent.

Dependency order of the engine (each imports only those before it): models, errors ->
selectors -> pricing -> lines -> dispatch, fulfilment -> services.
"""

from orders import ledger
from orders.errors import OrderError
from orders.models import Order, OrderLine, VendorOrder
from orders.pricing import PricedLine
from vendors.adapters import adapter_class


def add_line(order: Order, priced: PricedLine, *, routing_note: str | None = None,
             replaces: OrderLine | None = None) -> OrderLine:
    """Reserve ``priced``'s total on its supplier's balance (OrderError when the balance
    cannot cover it) and record the line with its supplier orders. The caller holds the
    transaction and adds the total to the order's own."""
    vendor = priced.product.vendor
    try:
        ledger.reserve(vendor=vendor, currency=priced.currency, amount=priced.total,
                       order=order)
    except ledger.InsufficientBalance as exc:
        raise OrderError(f"Refused: {exc}.", "quantity") from exc
    line = OrderLine.objects.create(
        order=order, product=priced.product, vendor=vendor, quantity=priced.quantity,
        face_value=priced.face_value, unit_cost=priced.unit_cost, currency=priced.currency,
        pay_with_currency=priced.pay_with_currency, item_id=priced.asked_item_id,
        routing_note=(priced.routing_note if routing_note is None else routing_note)[:300],
        replaces=replaces, note=priced.note[:300], reference=priced.reference[:64],
    )
    create_vendor_orders(order, line)
    return line


def create_vendor_orders(order: Order, line: OrderLine) -> list[VendorOrder]:
    """One supplier order per line, or one per code for suppliers that sell one per request."""
    one_each = adapter_class(line.vendor.kind).one_code_per_request
    sizes = [1] * line.quantity if one_each else [line.quantity]
    start = order.vendor_orders.count()
    return VendorOrder.objects.bulk_create(
        VendorOrder(
            order=order, line=line, vendor=line.vendor, quantity=size, currency=line.currency,
            client_reference=f"{order.reference}-{start + i + 1}",
        )
        for i, size in enumerate(sizes)
    )
