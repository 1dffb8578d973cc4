"""Supplier adapters, registered by kind. ``Vendor.kind`` choices come from this dict."""

from django.utils.module_loading import import_string

from vendors.adapters.base import Adapter

ADAPTERS = {
    "kalixo_v2": "vendors.adapters.kalixo_v2.KalixoV2",
    "kalixo_v1": "vendors.adapters.kalixo_v1.KalixoV1",
    "ezcards": "vendors.adapters.ezcards.EZCards",
    "starship": "vendors.adapters.starship.Starship",
}

KIND_CHOICES = [
    ("kalixo_v2", "Kalixo v2 (asynchronous)"),
    ("kalixo_v1", "Kalixo v1 (synchronous)"),
    ("ezcards", "EZ Cards"),
    ("starship", "Starship Rewards"),
]


def adapter_class(kind: str) -> type[Adapter]:
    return import_string(ADAPTERS[kind])
