"""Supplier adapters, registered by kind: the one list. ``Vendor.kind`` choices, each
supplier's capabilities and credential fields are read from the registered classes."""

from django.utils.module_loading import import_string

from vendors.adapters.base import Adapter, Capabilities

ADAPTERS = {
    "kalixo_v2": "vendors.adapters.kalixo_v2.KalixoV2",
    "kalixo_v1": "vendors.adapters.kalixo_v1.KalixoV1",
    "ezcards": "vendors.adapters.ezcards.EZCards",
    "starship": "vendors.adapters.starship.Starship",
}


def adapter_class(kind: str) -> type[Adapter]:
    return import_string(ADAPTERS[kind])


def capabilities(kind: str) -> Capabilities:
    return adapter_class(kind).capabilities


def kinds_with(capability: str) -> frozenset[str]:
    """The kinds whose adapters declare ``capability`` (a Capabilities field)."""
    return frozenset(k for k in ADAPTERS if getattr(capabilities(k), capability))


KIND_CHOICES = [(kind, adapter_class(kind).label) for kind in ADAPTERS]
