"""The sandbox server: every supplier simulator under a prefix of its own, plus a control API.

Mounts (a vendor's base URL is the sandbox URL plus the supplier's base path):
  /kalixo-v2   Kalixo API v2   base URL  http://127.0.0.1:8001/kalixo-v2/v2
  /kalixo-v1   Kalixo API v1   base URL  http://127.0.0.1:8001/kalixo-v1
  /ezcards     EZ Cards v2     base URL  http://127.0.0.1:8001/ezcards
  /starship    Starship        base URL  http://127.0.0.1:8001/starship

Control API (tests and demos; not part of any supplier's API):
  GET/POST /_sandbox/{supplier}/faults/{account}   read / replace an account's faults
  GET      /_sandbox/{supplier}/issued?account=    every code issued, in order
  GET      /_sandbox/{supplier}/orders?account=    the supplier-side orders
  GET      /_sandbox/{supplier}/charges?account=   what each order was charged (net of
                                                   refunds) and the account's balances
  GET      /_sandbox/{supplier}/webhooks?account=  the webhook events sent, with each attempt
                                                   (suppliers that send webhooks: Starship)
  POST     /_sandbox/reset                         forget everything
  GET      /_sandbox/health

Run it with gunicorn (several processes share the state file):
  gunicorn vendors.sandbox.app:application -b 127.0.0.1:8001 -k gthread -w 2 --threads 8
"""

import importlib
import random
import time

from vendors.sandbox import core
from vendors.sandbox.core import Request, Response

SUPPLIERS = {
    "kalixo_v2": "vendors.sandbox.kalixo_v2",
    "kalixo_v1": "vendors.sandbox.kalixo_v1",
    "ezcards": "vendors.sandbox.ezcards",
    "starship": "vendors.sandbox.starship",
}


def _modules() -> dict:
    return {name: importlib.import_module(path) for name, path in SUPPLIERS.items()}


MODULES = _modules()
control = core.Router()


@control.route("GET", "/_sandbox/health")
def health(request: Request) -> Response:
    return Response(200, {"status": "ok", "suppliers": sorted(MODULES)})


@control.route("POST", "/_sandbox/reset")
def reset(request: Request) -> Response:
    core.reset()
    return Response(204)


@control.route("GET", "/_sandbox/{supplier}/faults/{account}")
def get_faults(request: Request, supplier: str, account: str) -> Response:
    return Response(200, core.faults(supplier, account))


@control.route("POST", "/_sandbox/{supplier}/faults/{account}")
def set_faults(request: Request, supplier: str, account: str) -> Response:
    if supplier not in MODULES:
        return Response(404, {"error": f"unknown supplier {supplier}"})
    try:
        body = request.json()
    except ValueError:
        return Response(400, {"error": "body must be JSON"})
    if not isinstance(body, dict):
        return Response(400, {"error": "body must be a JSON object"})
    return Response(200, core.set_faults(supplier, account, body))


@control.route("GET", "/_sandbox/{supplier}/issued")
def issued(request: Request, supplier: str) -> Response:
    return Response(200, core.issued(supplier, request.query.get("account")))


@control.route("GET", "/_sandbox/{supplier}/orders")
def orders(request: Request, supplier: str) -> Response:
    module = MODULES.get(supplier)
    if module is None:
        return Response(404, {"error": f"unknown supplier {supplier}"})
    return Response(200, module.list_orders(request.query.get("account")))


@control.route("GET", "/_sandbox/{supplier}/charges")
def charges(request: Request, supplier: str) -> Response:
    module = MODULES.get(supplier)
    if module is None:
        return Response(404, {"error": f"unknown supplier {supplier}"})
    if not request.query.get("account"):
        return Response(400, {"error": "account is required"})
    return Response(200, module.charged(request.query["account"]))


@control.route("GET", "/_sandbox/{supplier}/webhooks")
def webhooks(request: Request, supplier: str) -> Response:
    module = MODULES.get(supplier)
    if module is None or not hasattr(module, "webhook_deliveries"):
        return Response(404, {"error": f"{supplier} sends no webhooks"})
    return Response(200, module.webhook_deliveries(request.query.get("account")))


def _read_fault(request: Request, faults: dict) -> bool:
    """``error_5xx_every: N``: one read (GET) in N answers a 5xx, at random (a counter would
    hit the same order again and again when its polls fall in step with it)."""
    every = faults.get("error_5xx_every")
    if request.method != "GET" or not isinstance(every, int) or every < 1:
        return False
    return random.random() < 1 / every


def _supplier_response(module, request: Request) -> Response:
    account = module.account_of(request)
    faults = core.faults(module.SUPPLIER, account) if account else {}
    if faults.get("latency"):
        time.sleep(float(faults["latency"]))
    if account:
        forced = core.take_fault(module.SUPPLIER, account, "rate_limit")
        limit = faults.get("rate_limit_per_minute", module.RATE_LIMIT)
        until = faults.get("rate_limited_until")  # a burst: every request until then
        wait = (
            float(forced.get("retry_after", 2)) if forced
            else until - time.time() if isinstance(until, int | float) and until > time.time()
            else core.hit_rate_limit(f"{module.SUPPLIER}:{account}", limit) if limit else None
        )
        if wait is not None:
            response = module.error(429, "Too many requests")
            response.headers["Retry-After"] = str(int(wait + 0.999))
            return response
        failing = faults.get("fail_paths") or {}
        if isinstance(failing, dict) and request.path in failing:
            return module.error(int(failing[request.path]), "Upstream provider error")
        if core.take_fault(module.SUPPLIER, account, "error_5xx") or _read_fault(
            request, faults
        ):
            return module.error(module.SERVER_ERROR_STATUS, "Upstream provider error")
    response = module.router.dispatch(request) or module.error(404, "Not found")
    if account and 200 <= response.status < 300:
        if request.method == "POST":
            fault = core.take_fault(module.SUPPLIER, account, "timeout_after_accept")
            if fault:  # the order is accepted and stored; the client never hears of it
                time.sleep(float(fault.get("timeout_seconds", 5)))
        if core.take_fault(module.SUPPLIER, account, "malformed_json"):
            response = Response(response.status, raw=b'{"status": "compl', headers={
                "Content-Type": "application/json"})
    return response


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    for module in MODULES.values():
        if path == module.PREFIX or path.startswith(module.PREFIX + "/"):
            request = Request(environ, path[len(module.PREFIX):] or "/")
            return core.serve(_supplier_response(module, request), start_response)
    request = Request(environ, path)
    response = control.dispatch(request) or Response(404, {"error": "not found"})
    return core.serve(response, start_response)
