"""Every string a supplier could send as a status maps to a portal status, and only the
statuses each supplier documents as delivery map to success."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vendors.adapters import ezcards, kalixo_v1, kalixo_v2, starship
from vendors.adapters.base import SupplierStatus, map_status, status_key

SUCCESS = (SupplierStatus.COMPLETED, SupplierStatus.PARTIALLY_COMPLETED)
TABLES = {
    # supplier: (its status table, the statuses it documents as codes delivered)
    "kalixo_v2": (kalixo_v2.STATUSES, {"completed", "partially_completed"}),
    "kalixo_v1": (kalixo_v1.STATUSES, {"completed"}),
    "ezcards": (ezcards.STATUSES, {"completed"}),
    "starship": (starship.STATUSES, {"delivered"}),
}


def some_spelling(table):
    """Any string, or one of the table's own statuses in any letter case and separators."""
    known = st.sampled_from(sorted(table)).flatmap(
        lambda key: st.sampled_from([key, key.upper(), key.title(), key.replace("_", " "),
                                     key.replace("_", "-"), f"  {key} "])
    )
    return st.one_of(st.text(), known)


@pytest.mark.parametrize("supplier", TABLES)
def test_it_maps_every_string_to_a_status_and_nothing_unknown_to_success(supplier):
    table, delivered = TABLES[supplier]

    @given(some_spelling(table))
    def check(value):
        status = map_status(table, value)
        assert isinstance(status, SupplierStatus)
        key = status_key(value)
        if key not in table:
            assert status is SupplierStatus.UNKNOWN
        if status in SUCCESS:
            assert key in delivered

    check()


@pytest.mark.parametrize("supplier", TABLES)
def test_it_maps_each_documented_delivery_status_to_success(supplier):
    table, delivered = TABLES[supplier]
    assert {key for key, status in table.items() if status in SUCCESS} == delivered
