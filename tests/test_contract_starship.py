"""The Starship adapter against the Starship sandbox over real HTTP."""

import json
import time
from decimal import Decimal

import pytest
import requests

from tests.conftest import MemoryCache
from vendors.adapters.base import OrderRequest, SupplierError, SupplierStatus
from vendors.adapters.starship import Starship, sign
from vendors.sandbox.starship import BASE_PATH


def key_credentials(unique):
    return {"api_key": f"sk_test_{unique}", "api_secret": f"secret_{unique}"}, f"sk_test_{unique}"


def jwt_credentials(unique):
    return {"username": f"sandbox_{unique}", "password": "sandbox"}, f"sandbox_{unique}"


CREDENTIALS = {"keys": key_credentials, "jwt": jwt_credentials}


@pytest.fixture(params=["keys", "jwt"])
def generation(request):
    return request.param


def make(sandbox_url, credentials, cache=None) -> Starship:
    return Starship(base_url=sandbox_url + BASE_PATH, credentials=credentials,
                    cache=cache or MemoryCache(), account="contract")


def order(unique, product_id="1001:25.00", quantity=2, suffix="", **kw) -> OrderRequest:
    return OrderRequest(client_reference=f"ref-{unique}{suffix}", product_id=product_id, sku="",
                        quantity=quantity, currency=kw.pop("currency", "USD"), **kw)


def faults(sandbox_url, account, body):
    r = requests.post(f"{sandbox_url}/_sandbox/starship/faults/{account}", json=body, timeout=5)
    assert r.status_code == 200


def issued(sandbox_url, account):
    return requests.get(f"{sandbox_url}/_sandbox/starship/issued", params={"account": account},
                        timeout=5).json()


def supplier_orders(sandbox_url, account):
    return requests.get(f"{sandbox_url}/_sandbox/starship/orders", params={"account": account},
                        timeout=5).json()


def usd(adapter) -> Decimal:
    return {b.currency: b.amount for b in adapter.fetch_balances()}["USD"]


def settle(adapter, order_id, *, until=lambda r: r.status.is_final, seconds=10.0):
    deadline = time.monotonic() + seconds
    while True:
        result = adapter.fetch_order(order_id)
        if until(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_it_reads_the_whole_paged_catalogue(sandbox_url, unique):
    creds, _ = key_credentials(unique)
    products = {p.supplier_product_id: p for p in make(sandbox_url, creds).fetch_catalog()}
    assert len({pid.split(":")[0] for pid in products}) > 100
    assert products["1001:25.00"].cost == Decimal("24.38")
    assert products["1002"].denomination_type == "open"
    assert products["1003:10.00"].delivery == "delayed"
    assert products["1009:1000"].face_currency == "JPY"


def test_it_submits_and_reads_codes_with_both_generations(sandbox_url, unique, generation):
    creds, account = CREDENTIALS[generation](unique)
    adapter = make(sandbox_url, creds)
    before = usd(adapter)
    result = adapter.submit_order(order(unique))
    assert result.status is SupplierStatus.COMPLETED
    assert (result.delivered, result.total) == (2, 2)
    assert result.cost.amount == Decimal("48.75") and result.cost.currency == "USD"
    assert before - usd(adapter) == Decimal("48.75")
    codes = {(c.code, c.pin) for c in result.codes}
    assert codes == {(i["code"], i["pin"]) for i in issued(sandbox_url, account)}, "codes differ"
    assert all(c.pin and c.claim_url for c in result.codes)
    again = adapter.fetch_order(result.supplier_order_id)
    assert {c.code for c in again.codes} == {c.code for c in result.codes}, "codes differ"
    found = adapter.lookup_order(f"ref-{unique}")
    assert found.supplier_order_id == result.supplier_order_id
    assert adapter.lookup_order(f"ref-{unique}-never-sent") is None


def test_it_quotes_and_orders_across_currencies(sandbox_url, unique):
    creds, _ = key_credentials(unique)
    adapter = make(sandbox_url, creds)
    quote = adapter.quote(order(unique, "1010:500.00", 1, currency="INR"))
    assert quote.total_cost.currency == "USD" and quote.details["source_currency"] == "INR"
    result = adapter.submit_order(order(unique, "1010:500.00", 1, currency="INR",
                                        pay_with_currency="USD"))
    assert result.cost == quote.total_cost
    yen = adapter.submit_order(order(unique, "1009:1000", 3, suffix="-jpy", currency="JPY"))
    assert yen.cost.amount == Decimal("2850") and yen.cost.currency == "JPY"
    assert yen.status is SupplierStatus.COMPLETED


@pytest.mark.parametrize("product, first, sub_status", [
    ("1003:10.00", SupplierStatus.PROCESSING, "INITIAL"),
    ("1004:10.00", SupplierStatus.PROCESSING, "VENDOR_ORDER_PENDING"),
])
def test_it_follows_a_delayed_order_to_delivery(sandbox_url, unique, product, first,
                                                sub_status):
    creds, account = key_credentials(unique)
    adapter = make(sandbox_url, creds)
    result = adapter.submit_order(order(unique, product, 2))
    assert result.status is first and result.raw_status == "PENDING"
    assert result.details["sub_status"] == sub_status and result.codes == []
    done = settle(adapter, result.supplier_order_id)
    assert done.status is SupplierStatus.COMPLETED and done.delivered == 2
    assert {c.code for c in done.codes} == {i["code"] for i in issued(sandbox_url, account)}


def test_it_waits_out_a_partial_delivery(sandbox_url, unique):
    creds, _ = key_credentials(unique)
    adapter = make(sandbox_url, creds)
    result = adapter.submit_order(order(unique, "1005:10.00", 4))
    assert result.status is SupplierStatus.PROCESSING
    assert result.raw_status == "PARTIALLY_DELIVERED"
    assert adapter.fetch_order(result.supplier_order_id).delivered == 2
    done = settle(adapter, result.supplier_order_id)
    assert done.status is SupplierStatus.COMPLETED and done.delivered == 4


def test_it_keeps_the_codes_of_a_partial_delivery_that_ends_cancelled(sandbox_url, unique):
    creds, account = key_credentials(unique)
    adapter = make(sandbox_url, creds)
    before = usd(adapter)
    result = adapter.submit_order(order(unique, "1006:10.00", 4))
    done = settle(adapter, result.supplier_order_id)
    assert done.status is SupplierStatus.PARTIALLY_COMPLETED
    assert (done.delivered, done.total) == (2, 4)
    assert len(issued(sandbox_url, account)) == 2
    assert before - usd(adapter) == result.cost.amount / 2  # the undelivered half refunded


@pytest.mark.parametrize("product, final", [("1007:10.00", SupplierStatus.CANCELLED),
                                            ("1008:10.00", SupplierStatus.FAILED)])
def test_it_sees_a_refunded_cancellation_or_failure(sandbox_url, unique, product, final):
    creds, account = key_credentials(unique)
    adapter = make(sandbox_url, creds)
    before = usd(adapter)
    result = adapter.submit_order(order(unique, product, 1))
    assert result.status is SupplierStatus.PROCESSING
    assert usd(adapter) < before
    done = settle(adapter, result.supplier_order_id)
    assert done.status is final and done.codes == []
    assert done.details["sub_status"] == "REFUNDED"
    assert usd(adapter) == before
    assert issued(sandbox_url, account) == []


def test_it_places_one_order_for_a_repeated_submission(sandbox_url, unique):
    creds, account = key_credentials(unique)
    adapter = make(sandbox_url, creds)
    first = adapter.submit_order(order(unique))
    second = adapter.submit_order(order(unique))
    assert first.supplier_order_id == second.supplier_order_id
    assert len(supplier_orders(sandbox_url, account)) == 1


def test_it_finds_the_order_when_only_the_reference_is_a_duplicate(sandbox_url, unique):
    creds, account = key_credentials(unique)
    body = json.dumps({"product_id": 1001, "denomination": 10, "quantity": 1,
                       "ref": f"ref-{unique}"}).encode()
    path = "/api/v1/orders"
    headers = {"X-API-Key": creds["api_key"], "X-API-Secret": creds["api_secret"],
               "Content-Type": "application/json", "Idempotency-Key": f"other-key-{unique}",
               **sign(creds["api_secret"], "POST", path, body)}
    placed = requests.post(sandbox_url + BASE_PATH + path, data=body, headers=headers, timeout=5)
    assert placed.status_code == 200
    result = make(sandbox_url, creds).submit_order(order(unique))
    assert result.supplier_order_id == str(placed.json()["id"])
    assert len(supplier_orders(sandbox_url, account)) == 1


def test_it_is_refused_with_wrong_credentials(sandbox_url, unique):
    for creds in ({"api_key": f"sk_test_{unique}", "api_secret": "secret_wrong"},
                  {"username": f"sandbox_{unique}", "password": "wrong"}):
        with pytest.raises(SupplierError) as exc:
            make(sandbox_url, creds).fetch_balances()
        assert exc.value.status_code == 401 and exc.value.code == "E_UNAUTHORIZED_ACCESS"


@pytest.mark.parametrize("tamper", ["signature", "stale", "missing_key"])
def test_the_sandbox_checks_signatures_and_idempotency_keys(sandbox_url, unique, tamper):
    creds, _ = key_credentials(unique)
    path, body = "/api/v1/orders", b'{"product_id":1001,"denomination":10,"quantity":1}'
    stamp = int(time.time()) - (600 if tamper == "stale" else 0)
    signed = sign("wrong-secret" if tamper == "signature" else creds["api_secret"], "POST",
                  path, body, timestamp=stamp)
    headers = {"X-API-Key": creds["api_key"], "X-API-Secret": creds["api_secret"], **signed}
    if tamper != "missing_key":
        headers["Idempotency-Key"] = f"key-{unique}"
    r = requests.post(sandbox_url + BASE_PATH + path, data=body, headers=headers, timeout=5)
    expected = (400, "IDEMPOTENCY_KEY_REQUIRED") if tamper == "missing_key" else (
        401, "E_UNAUTHORIZED_ACCESS")
    assert (r.status_code, r.json()["error"]["code"]) == expected


def test_it_refreshes_rotates_and_logs_in_again(sandbox_url, unique):
    creds, account = jwt_credentials(unique)
    faults(sandbox_url, account, {"access_ttl": 2})
    cache = MemoryCache()
    adapter = make(sandbox_url, creds, cache)
    adapter.fetch_balances()
    first = dict(cache.get("starship:contract:tokens"))
    time.sleep(1.6)  # inside the renewal margin of a 2 s token
    adapter.fetch_balances()
    second = cache.get("starship:contract:tokens")
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    old = requests.post(f"{sandbox_url}{BASE_PATH}/api/v1/auth/refresh",
                        json={"refresh_token": first["refresh_token"]}, timeout=5)
    assert old.status_code == 401  # rotated: the old refresh token stopped working
    # a refresh token another worker already used: refused, so the adapter logs in again
    cache.set("starship:contract:tokens", {**second, "refresh_token": first["refresh_token"],
                                           "access_expires_at": time.time() - 1})
    assert usd(adapter) > 0
    # an access token the supplier no longer accepts: one 401, a fresh login, one retry
    cache.set("starship:contract:tokens", {**cache.get("starship:contract:tokens"),
                                           "access_token": "sat_revoked",
                                           "access_expires_at": time.time() + 900,
                                           "lifetime": 900})
    assert usd(adapter) > 0
    assert cache.get("starship:contract:tokens")["access_token"] != "sat_revoked"


def test_it_passes_on_a_forced_429(sandbox_url, unique):
    creds, account = key_credentials(unique)
    faults(sandbox_url, account, {"rate_limit": 1, "retry_after": 3})
    adapter = make(sandbox_url, creds)
    with pytest.raises(SupplierError) as exc:
        adapter.fetch_balances()
    assert exc.value.status_code == 429 and exc.value.retryable and exc.value.retry_after == 3
    assert usd(adapter) > 0


def test_it_reconciles_a_timeout_after_accept(sandbox_url, unique, settings):
    settings.SUPPLIER_READ_TIMEOUT = 1
    creds, account = key_credentials(unique)
    faults(sandbox_url, account, {"timeout_after_accept": 1, "timeout_seconds": 3})
    adapter = make(sandbox_url, creds)
    with pytest.raises(SupplierError) as exc:
        adapter.submit_order(order(unique))
    assert exc.value.outcome_unknown
    found = adapter.lookup_order(f"ref-{unique}")
    assert found is not None and found.status is SupplierStatus.COMPLETED
    assert len(supplier_orders(sandbox_url, account)) == 1


def test_it_reports_a_5xx_and_finds_no_order_afterwards(sandbox_url, unique):
    creds, account = key_credentials(unique)
    faults(sandbox_url, account, {"error_5xx": 1})
    adapter = make(sandbox_url, creds)
    with pytest.raises(SupplierError) as exc:
        adapter.submit_order(order(unique))
    assert exc.value.outcome_unknown and exc.value.retryable and exc.value.status_code == 502
    assert adapter.lookup_order(f"ref-{unique}") is None


def test_it_reports_a_malformed_answer_and_the_order_is_found(sandbox_url, unique):
    creds, account = key_credentials(unique)
    faults(sandbox_url, account, {"malformed_json": 1})
    adapter = make(sandbox_url, creds)
    with pytest.raises(SupplierError) as exc:
        adapter.submit_order(order(unique))
    assert exc.value.outcome_unknown and not exc.value.retryable
    assert adapter.lookup_order(f"ref-{unique}").status is SupplierStatus.COMPLETED


def test_it_treats_an_undocumented_status_as_unknown(sandbox_url, unique):
    creds, account = key_credentials(unique)
    adapter = make(sandbox_url, creds)
    placed = adapter.submit_order(order(unique))
    faults(sandbox_url, account, {"unknown_status": 1})
    result = adapter.fetch_order(placed.supplier_order_id)
    assert result.status is SupplierStatus.UNKNOWN and result.raw_status == "on_hold"


def test_the_demo_credentials_work(sandbox_url):
    from vendors.sandbox.starship import DEMO_CREDENTIALS

    assert usd(make(sandbox_url, DEMO_CREDENTIALS)) > 0
