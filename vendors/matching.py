"""Which supplier products are offers of the same catalog item.

The rules compare what a buyer means by a card: its brand (normalised: case, accents,
punctuation, trademark signs and words such as "gift card" do not count), its country, its
currency and its face value (or, for a range of values, that it is one). Products that differ
in any of these are never matched: the same brand for another country or in another currency
is another item. A product without a brand or a currency is an item of its own.

``match_offers`` runs after every catalog sync, inside its transaction; an offer an operator
matched or split by hand (``Product.matched_by_hand``) keeps its item.
"""

import re
import unicodedata
from collections.abc import Iterable
from decimal import Decimal

from vendors.models import CatalogItem, Product

# Words suppliers add to a brand that do not change the card.
NOISE_WORDS = frozenset({
    "e", "gift", "giftcard", "giftcards", "card", "cards", "egift", "ecard", "evoucher", "voucher",
    "vouchers", "code", "codes", "digital", "online", "the",
})


def normal_brand(brand: str) -> str:
    """"Amazon.com Gift Card™" and "AMAZON.COM" both give "amazon com"."""
    text = re.sub("[\u2122\u00ae\u00a9]", " ", brand)  # ™ ® © (NFKD spells ™ out as TM)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    text = text.replace("&", " and ")
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w and w not in NOISE_WORDS]
    return " ".join(words)


def plain_value(value: Decimal) -> str:
    """10, 10.0 and 10.0000 are one face value."""
    return format(value.normalize(), "f")


def item_key(*, brand: str, country: str, currency: str, face_value: Decimal | None,
             open_range: bool) -> str | None:
    """The key products of one item share; None where the rules cannot say (an item of its
    own)."""
    brand_key = normal_brand(brand)
    if not brand_key or not currency:
        return None
    value = "range" if open_range else (plain_value(face_value) if face_value is not None
                                        else None)
    if value is None:
        return None
    return "|".join((brand_key, country.upper(), currency.upper(), value))


def key_of(product: Product) -> str:
    return item_key(
        brand=product.brand, country=product.country, currency=product.face_currency,
        face_value=product.face_value,
        open_range=product.denomination_type == Product.DenominationType.OPEN,
    ) or own_key(product)


def own_key(product: Product) -> str:
    """The key of an item holding only ``product``."""
    return f"offer|{product.vendor_id}|{product.supplier_product_id}"


def item_name(product: Product) -> str:
    value = (plain_value(product.face_value) if product.face_value is not None
             and product.denomination_type == Product.DenominationType.FIXED else "any value")
    return " ".join(part for part in (product.brand or product.name, product.country.upper(),
                                      value, product.face_currency.upper()) if part)[:300]


def items_for(keyed: dict[str, Product]) -> dict[str, CatalogItem]:
    """The items of ``keyed`` (key -> a product that names a new item), created if missing."""
    items = {i.key: i for i in CatalogItem.objects.filter(key__in=list(keyed))}
    missing = [CatalogItem(
        key=key, name=item_name(product), brand=product.brand,
        country=product.country.upper(), currency=product.face_currency.upper(),
        face_value=(product.face_value
                    if product.denomination_type == Product.DenominationType.FIXED else None),
    ) for key, product in keyed.items() if key not in items]
    CatalogItem.objects.bulk_create(missing, batch_size=500, ignore_conflicts=True)
    if missing:
        items = {i.key: i for i in CatalogItem.objects.filter(key__in=list(keyed))}
    return items


def match_offers(products: Iterable[Product]) -> int:
    """Give each product the item its key names (matched-by-hand ones excepted); return how
    many changed item. Items left without an offer are removed."""
    products = [p for p in products if not p.matched_by_hand]
    keys = {p.pk: key_of(p) for p in products}
    items = items_for({key: p for p in products for key in [keys[p.pk]]})
    changed = []
    for product in products:
        item = items[keys[product.pk]]
        if product.item_id != item.pk:
            product.item = item
            changed.append(product)
    Product.objects.bulk_update(changed, ["item"], batch_size=500)
    drop_empty_items()
    return len(changed)


def drop_empty_items() -> None:
    """Items whose offers all moved elsewhere are gone from the catalog."""
    CatalogItem.objects.filter(offers__isnull=True).delete()
