"""Every string a supplier could send as a status maps to a portal status, and only the
statuses each supplier documents as delivery map to success."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vendors.adapters import ezcards, kalixo_v1, kalixo_v2, starship
from vendors.adapters.base import SupplierStatus, map_status, settle_status, status_key

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


STATUSES = st.sampled_from(list(SupplierStatus))


@given(STATUSES, st.integers(0, 5), st.one_of(st.none(), st.integers(0, 5)), st.integers(0, 3))
def test_it_settles_every_supplier_by_one_rule(mapped, delivered, ordered, pending):
    status, why = settle_status(mapped, delivered=delivered, ordered=ordered, pending=pending)
    short = ordered is not None and delivered < ordered
    if mapped is SupplierStatus.COMPLETED:
        # completed with fewer codes than ordered (and none still arriving) is never a success
        assert status is not SupplierStatus.COMPLETED or (delivered and not short and not pending)
        if short and not pending:
            assert status is SupplierStatus.UNKNOWN and why
    if mapped in (SupplierStatus.FAILED, SupplierStatus.CANCELLED) and delivered:
        assert status in (SupplierStatus.PARTIALLY_COMPLETED, SupplierStatus.UNKNOWN)
    if mapped not in (SupplierStatus.COMPLETED, SupplierStatus.FAILED, SupplierStatus.CANCELLED):
        assert (status, why) == (mapped, "")


COMPLETED_SHORT = {
    # each supplier's "completed" answer for 2 codes ordered and 1 sent, as its adapter reads it
    "kalixo_v2": lambda: kalixo_v2.KalixoV2(base_url="https://k", credentials={}, cache={})
    ._order(kalixo_v2.Order.model_validate(
        {"orderId": 1, "status": "completed",
         "products": [{"productId": 2, "quantity": 2, "codes": [{"code": "A"}]}]})),
    "kalixo_v1": lambda: kalixo_v1._order_result(kalixo_v1.RetrievedOrder.model_validate(
        {"orderId": 1, "orderStatus": "completed",
         "products": [{"productId": 2, "quantity": 2, "pin": [{"PIN": "A"}]}]}),
        client_reference="", currency="", sku=""),
    "starship": lambda: starship.Starship(base_url="https://s", credentials={}, cache={})
    ._order_result(starship.Order.model_validate({"id": 1, "status": "DELIVERED", "quantity": 2,
                                                  "vouchers": [{"card_number": "A"}]})),
}


@pytest.mark.parametrize("supplier", COMPLETED_SHORT)
def test_it_maps_completed_with_fewer_codes_the_same_for_every_supplier(supplier):
    assert COMPLETED_SHORT[supplier]().status is SupplierStatus.UNKNOWN
