from decimal import Decimal

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from common.money import MoneyError, format_money

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    """``{{ amount|money:currency }}``: the amount with its currency's symbol and exponent."""
    if amount is None:
        return "—"
    try:
        return format_money(amount, currency)
    except (MoneyError, ValueError, KeyError):
        return f"{amount} {currency}".strip()


@register.filter
def status_badge(order) -> SafeString:
    """``{{ order|status_badge }}``: the order's status as a badge (a filter, not an include:
    the order list draws one per row)."""
    return format_html('<span class="status status-{}">{}</span>', order.status,
                       order.get_status_display())


@register.filter
def progress(order) -> SafeString:
    """``{{ order|progress }}``: codes delivered of those ordered, as a bar and in figures."""
    return format_html('<progress max="{}" value="{}"></progress>\n{} / {}',
                       order.quantity or 1, order.delivered_quantity,
                       order.delivered_quantity, order.quantity)


@register.filter
def percent(fraction: Decimal | None) -> str:
    """``{{ 0.0525|percent }}``: "5.3 %"; a dash for None."""
    if fraction is None:
        return "—"
    return f"{(fraction * 100).quantize(Decimal('0.1'))} %"


SUPPLIER_SAYS = {
    "refunded": "the supplier says it refunded the charge",
    "not_refunded": "the supplier says it has not refunded the charge yet",
}


@register.filter
def outcome(vendor_order) -> str:
    """What became of a finished supplier order that delivered nothing, in words: its final
    status, the reason we recorded, and what the supplier said of the money (its sub-status,
    where it gives one)."""
    words = [vendor_order.get_status_display()]
    if vendor_order.supplier_status:
        words.append(f"(supplier status {vendor_order.supplier_status})")
    if vendor_order.last_error:
        words.append(f"— {vendor_order.last_error}")
    sub_status = str((vendor_order.details or {}).get("sub_status") or "")
    if sub_status:
        said = SUPPLIER_SAYS.get(sub_status.lower(), f"sub-status {sub_status}")
        words.append(f"; {said}")
    return " ".join(words).replace(" ;", ";")
