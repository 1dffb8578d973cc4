"""Money at the supplier edge: every amount becomes a ``Decimal`` with an ISO-4217 currency.

Currency exponents come from Babel's CLDR data (JPY has none, KWD has three), never from a
hand-written table. Floats are read through their shortest repr, so 196.01 stays 196.01.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision, list_currencies
from django.core.exceptions import ValidationError

_KNOWN = frozenset(list_currencies())
# The largest amount the portal takes, from a person or a supplier: 15 significant digits,
# which every backend keeps exactly (SQLite keeps a decimal as a double; a larger amount comes
# back rounded, and unreadable at its field's precision), and far above any card, limit or
# balance.
MONEY_MAX = Decimal("99999999999.9999")


class MoneyError(ValueError):
    pass


def currency_code(value: object) -> str:
    code = str(value or "").strip().upper()
    if code not in _KNOWN:
        raise MoneyError(f"unknown currency {value!r}")
    return code


def exponent(currency: str) -> int:
    return get_currency_precision(currency_code(currency))


def to_decimal(value: object) -> Decimal:
    """A supplier's number (int, float, or decimal string) as an exact ``Decimal``."""
    if isinstance(value, bool) or value is None:
        raise MoneyError(f"not an amount: {value!r}")
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise MoneyError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise MoneyError(f"not an amount: {value!r}")
    if abs(amount) > MONEY_MAX:
        raise MoneyError(f"amount out of range: {value!r}")
    return amount


def money_bound(value: Decimal | None) -> None:
    """The validator of every money field: at most ``MONEY_MAX`` either way."""
    if value is not None and abs(value) > MONEY_MAX:
        raise ValidationError(f"Enter an amount of at most {MONEY_MAX:,}.", code="max_value")


def from_minor(value: object, currency: str) -> Decimal:
    """Minor units (1099 pence) to major units (10.99) with the currency's own exponent."""
    amount = to_decimal(value)
    if amount != amount.to_integral_value():
        raise MoneyError(f"minor units must be whole: {value!r}")
    return (amount.scaleb(-exponent(currency))).quantize(quantum(currency))


def to_minor(amount: Decimal, currency: str) -> int:
    return int(round_money(amount, currency).scaleb(exponent(currency)))


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-exponent(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise MoneyError("Money amounts are Decimal")
        object.__setattr__(self, "currency", currency_code(self.currency))

    def __str__(self) -> str:
        return format_money(self.amount, self.currency)


def parse_amounts(text: str) -> dict[str, Decimal]:
    """``"GBP:500,EUR:580"`` as ``{"GBP": Decimal("500"), ...}``; empty text, no amounts."""
    amounts: dict[str, Decimal] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        code, sep, value = item.partition(":")
        if not sep:
            raise MoneyError(f"{item!r} is not <currency>:<amount>")
        currency = currency_code(code)
        if currency in amounts:
            raise MoneyError(f"{currency} is listed twice")
        amount = to_decimal(value)
        if amount < 0:
            raise MoneyError(f"the amount for {currency} is negative")
        amounts[currency] = amount
    return amounts


def format_money(amount: Decimal, currency: str, locale: str = "en_GB") -> str:
    return format_currency(amount, currency, locale=locale)
