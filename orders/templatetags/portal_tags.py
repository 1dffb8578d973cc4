from decimal import Decimal

from django import template

from portal.money import MoneyError, format_money

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
