"""Writes for suppliers: credentials, vendor settings, catalog sync.

The balance sync writes the ledger, so it lives with the ledger, in orders.balances.
"""

import dataclasses
import logging
import random
import time

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from common.addresses import origin
from common.http import Budget, SupplierError
from common.money import MoneyError
from vendors import matching
from vendors.adapters import ADAPTERS, adapter_class
from vendors.adapters.base import Adapter, ProductInfo
from vendors.credentials import open_credentials, seal_credentials
from vendors.models import CatalogItem, Product, Vendor
from vendors.token_cache import SealedCache

logger = logging.getLogger(__name__)

PRODUCT_FIELDS = [
    f.name for f in dataclasses.fields(ProductInfo) if f.name != "supplier_product_id"
]


def adapter_for(vendor: Vendor) -> Adapter:
    """The vendor's adapter, with its credentials opened and the shared token cache (sealed:
    tokens are stored encrypted)."""
    return adapter_class(vendor.kind)(
        base_url=vendor.base_url,
        credentials=open_credentials(vendor),
        cache=SealedCache(cache),
        account=str(vendor.pk),
        budget=Budget(f"vendor:{vendor.pk}", vendor.rate_limit_per_minute),
    )


def missing_credentials(*, kind: str, credentials: dict[str, str]) -> list[str]:
    """The fields a supplier of ``kind`` needs that ``credentials`` lacks (none for an unknown
    kind: the form's own choice field refuses that)."""
    if kind not in ADAPTERS:
        return []
    return adapter_class(kind).missing_credentials(credentials)


@transaction.atomic
def vendor_set_credentials(*, vendor: Vendor, credentials: dict[str, str], actor=None) -> Vendor:
    """Store new credentials encrypted; the audit row names the fields, never their values."""
    if vendor.pk is None:
        vendor.save()
    seal_credentials(vendor, credentials)
    vendor.save(update_fields=["credentials_encrypted", "updated_at"])
    audit.record(
        action=audit.Action.CREDENTIALS_CHANGED, target=vendor, actor=actor,
        message=f"Credentials of {vendor} changed", data={"fields": sorted(credentials)},
    )
    return vendor


@transaction.atomic
def vendor_save(*, vendor: Vendor, before: dict[str, object] | None = None, actor=None) -> Vendor:
    """Create or change a vendor's settings. ``before`` holds the changed fields' previous
    values (None for a new vendor); the audit row names each change, never credentials."""
    created = vendor.pk is None
    moved = (not created and before and "base_url" in before
             and origin(str(before["base_url"])) != origin(vendor.base_url))
    if moved and vendor.has_credentials:
        # Credentials belong to the host they were issued for: sent to another, anyone able
        # to change the URL could read them. They are entered again, or the vendor stays idle.
        vendor.credentials_encrypted = ""
        audit.record(
            action=audit.Action.CREDENTIALS_CHANGED, target=vendor, actor=actor,
            message=f"Credentials of {vendor} dropped: its URL moved from "
                    f"{origin(str(before['base_url']))} to {origin(vendor.base_url)}",
            data={"fields": [], "dropped": True},
        )
    vendor.save()
    if created:
        audit.record(action=audit.Action.VENDOR_CREATED, target=vendor, actor=actor,
                     message=f"Vendor {vendor} created",
                     data={"kind": vendor.kind, "base_url": vendor.base_url})
    elif before:
        changes = {name: [_plain(old), _plain(getattr(vendor, name))]
                   for name, old in before.items() if name != "credentials_encrypted"}
        audit.record(action=audit.Action.VENDOR_CHANGED, target=vendor, actor=actor,
                     message=f"Vendor {vendor} changed: {', '.join(sorted(changes))}",
                     data={"changes": changes})
    return vendor


@transaction.atomic
def vendor_delete(*, vendor: Vendor, actor=None) -> None:
    audit.record(action=audit.Action.VENDOR_DELETED, target=vendor, actor=actor,
                 message=f"Vendor {vendor} deleted",
                 data={"name": vendor.name, "kind": vendor.kind, "base_url": vendor.base_url})
    vendor.delete()


def _plain(value: object) -> object:
    return value if isinstance(value, (bool, int, str)) or value is None else str(value)


def record_sync_failure(vendor: Vendor, field: str, what: str, error: Exception) -> None:
    """Note on the vendor why its last sync of ``what`` failed, and audit it."""
    message = f"{what} sync failed: {error}"
    logger.warning("%s for vendor %s", message, vendor.pk)
    with transaction.atomic():
        setattr(vendor, field, message)
        vendor.save(update_fields=[field, "updated_at"])
        audit.record(action=audit.Action.SYNC_FAILED, target=vendor, message=message)


def sync_catalog(*, vendor: Vendor) -> dict[str, int]:
    """Upsert the supplier's catalog. Withdrawn products become unavailable, never deleted.

    The whole catalog is read before anything is written, so a failed sync leaves the
    previous data as it was and records why.
    """
    try:
        offered = with_retries(
            lambda: {p.supplier_product_id: p for p in adapter_for(vendor).fetch_catalog()}
        )
    except (SupplierError, MoneyError) as exc:
        record_sync_failure(vendor, "catalog_sync_error", "Catalog", exc)
        raise
    now = timezone.now()
    with transaction.atomic():
        existing = {p.supplier_product_id: p for p in vendor.products.all()}
        to_create, to_update = [], []
        for spid, info in offered.items():
            values = {name: getattr(info, name) for name in PRODUCT_FIELDS}
            values["last_seen_at"] = now
            product = existing.get(spid)
            if product is None:
                to_create.append(Product(vendor=vendor, supplier_product_id=spid, **values))
            else:
                for name, value in values.items():
                    setattr(product, name, value)
                to_update.append(product)
        withdrawn = [p for spid, p in existing.items() if spid not in offered and p.available]
        for product in withdrawn:
            product.available = False
            to_update.append(product)
        Product.objects.bulk_create(to_create, batch_size=500)
        Product.objects.bulk_update(
            to_update, [*PRODUCT_FIELDS, "last_seen_at", "updated_at"], batch_size=500
        )
        matching.match_offers(vendor.products.all())
        vendor.catalog_synced_at = now
        vendor.catalog_sync_error = ""
        vendor.save(update_fields=["catalog_synced_at", "catalog_sync_error", "updated_at"])
        counts = {
            "created": len(to_create),
            "updated": len(to_update) - len(withdrawn),
            "withdrawn": len(withdrawn),
        }
        audit.record(
            action=audit.Action.CATALOG_SYNCED, target=vendor,
            message=f"Catalog of {vendor} synced", data=counts,
        )
    return counts


def with_retries(read):
    """Call ``read`` again after a retryable supplier error (a 429, a 5xx, a timeout), a few
    times and soon, honouring ``Retry-After``: one bad answer must not fail a whole sync."""
    attempts = max(1, settings.SYNC_ATTEMPTS)
    for attempt in range(1, attempts + 1):
        try:
            return read()
        except SupplierError as exc:
            if not exc.retryable or attempt == attempts:
                raise
            wait = exc.retry_after if exc.retry_after is not None else attempt
            time.sleep(min(settings.SYNC_RETRY_MAX_WAIT, wait) + random.uniform(0, 0.5))
    raise AssertionError("unreachable")


def can_match_offers(user) -> bool:
    """Matching offers to catalog items is for those who manage vendors: operators."""
    return user.is_active and user.has_perm("vendors.change_vendor")


@transaction.atomic
def offers_match(*, products: list[Product], actor) -> CatalogItem:
    """Make ``products`` offers of one item (the first one's), by hand: syncs leave them so.
    Refused (ValueError, nothing changes) across currencies: an item has one currency."""
    if len({p.face_currency.upper() for p in products}) != 1:
        raise ValueError("Offers in different currencies cannot be one item.")
    if len({face_of(p) for p in products}) != 1:
        raise ValueError("Offers of different face values cannot be one item: a line for one "
                         "would buy the other.")
    first = products[0]
    if first.item is not None and first.item.face_value != (
            None if face_of(first) == "range" else first.face_value):
        raise ValueError(f"{first} is not a card of {first.item}'s face value.")
    item = first.item or matching.items_for({matching.own_key(first): first})[
        matching.own_key(first)]
    Product.objects.filter(pk__in=[p.pk for p in products]).update(item=item,
                                                                  matched_by_hand=True)
    matching.drop_empty_items()
    _record_matching(products, actor, f"Matched as one item, {item}", item)
    return item


@transaction.atomic
def offers_split(*, products: list[Product], actor) -> None:
    """Give each of ``products`` an item of its own, by hand: syncs leave them so."""
    items = matching.items_for({matching.own_key(p): p for p in products})
    for product in products:
        product.item = items[matching.own_key(product)]
        product.matched_by_hand = True
    Product.objects.bulk_update(products, ["item", "matched_by_hand"])
    matching.drop_empty_items()
    _record_matching(products, actor, "Split into items of their own")


@transaction.atomic
def offers_rematch(*, products: list[Product], actor) -> None:
    """Hand ``products`` back to the matching rules."""
    for product in products:
        product.matched_by_hand = False
    Product.objects.bulk_update(products, ["matched_by_hand"])
    matching.match_offers(products)
    _record_matching(products, actor, "Returned to the matching rules")


def face_of(product: Product) -> str:
    """What a card is worth, for matching by hand: its face value, or "range" for any value
    within one (routing checks a line's value against each offer's range)."""
    if product.denomination_type == Product.DenominationType.OPEN:
        return "range"
    return matching.plain_value(product.face_value) if product.face_value is not None else ""


def _record_matching(products: list[Product], actor, what: str,
                     item: CatalogItem | None = None) -> None:
    audit.record(
        action=audit.Action.CATALOG_MATCHED, target=item, actor=actor,
        message=f"{what}: {', '.join(str(p) for p in products)}"[:500],
        data={"products": [p.pk for p in products]},
    )
