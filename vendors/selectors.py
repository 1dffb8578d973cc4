"""Reads for suppliers."""

from django.db.models import QuerySet

from vendors.models import Vendor


def enabled_vendors(name: str | None = None) -> QuerySet[Vendor]:
    vendors = Vendor.objects.filter(enabled=True)
    return vendors.filter(name=name) if name else vendors
