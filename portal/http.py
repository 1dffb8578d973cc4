"""The one HTTP seam between the portal and its suppliers.

Every supplier call goes through ``request``: one shared session, explicit connect and read
timeouts, errors mapped to ``SupplierError`` (which says whether retrying can help, how long to
wait, and whether a write's outcome is unknown), and a log line that carries no credential,
header or body.
"""

import json
import logging
import re
import threading
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils import timezone

logger = logging.getLogger("portal.http")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET_KEYS = re.compile(
    r"code|pin|password|secret|token|key|card_number|claim_url|authorization|signature",
    re.IGNORECASE,
)

_local = threading.local()


class SupplierError(Exception):
    """A supplier call that did not give a usable answer.

    ``retryable``: the same call may succeed later (after ``retry_after`` seconds if known).
    ``outcome_unknown``: a write may or may not have taken effect; reconcile before resending.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
        status_code: int | None = None,
        code: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown
        self.status_code = status_code
        self.code = code


def session() -> requests.Session:
    """One session per thread, so connections to a supplier are reused."""
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
        s.headers["User-Agent"] = "voucher-portal/1"
    return s


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    json_body: Any = None,
    data: bytes | None = None,
    timeout: tuple[float, float] | None = None,
) -> requests.Response:
    """Send one request. Returns any response below 500 except 429, which the caller reads.

    Raises ``SupplierError`` for network failures, timeouts, 429 and 5xx.
    """
    method = method.upper()
    is_write = method in WRITE_METHODS
    timeout = timeout or (settings.SUPPLIER_CONNECT_TIMEOUT, settings.SUPPLIER_READ_TIMEOUT)
    where = f" on {method} {url_path(url)}"
    try:
        response = session().request(
            method, url, headers=headers, params=params, json=json_body, data=data,
            timeout=timeout,
        )
    except requests.ConnectTimeout as exc:
        logger.warning("%s %s: connect timeout", method, redact_url(url))
        raise SupplierError(f"supplier did not accept the connection{where}",
                            retryable=True) from exc
    except requests.Timeout as exc:
        logger.warning("%s %s: read timeout", method, redact_url(url))
        raise SupplierError(
            f"supplier did not answer in time{where}", retryable=True,
            outcome_unknown=is_write,
        ) from exc
    except requests.RequestException as exc:
        logger.warning("%s %s: %s", method, redact_url(url), type(exc).__name__)
        raise SupplierError(
            f"connection to supplier failed ({type(exc).__name__}){where}",
            retryable=True, outcome_unknown=is_write,
        ) from exc

    logger.info(
        "%s %s -> %s in %.0f ms", method, redact_url(url), response.status_code,
        response.elapsed.total_seconds() * 1000,
    )
    if response.status_code == 429:
        raise SupplierError(
            f"supplier rate limit reached{where}", retryable=True, status_code=429,
            retry_after=retry_after_seconds(response),
        )
    if response.status_code >= 500:
        raise SupplierError(
            f"supplier error {response.status_code}{where}", retryable=True,
            outcome_unknown=is_write,
            status_code=response.status_code, retry_after=retry_after_seconds(response),
        )
    return response


def read_json(response: requests.Response, *, outcome_unknown: bool = False) -> Any:
    """The response body as JSON, or a ``SupplierError`` that says the body was malformed."""
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError) as exc:
        raise SupplierError(
            f"supplier sent a malformed answer (HTTP {response.status_code}, not JSON)",
            outcome_unknown=outcome_unknown, status_code=response.status_code,
        ) from exc


def retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def url_path(url: str) -> str:
    """The URL's path alone: no host, no query string (which may carry references or keys)."""
    return urlsplit(url).path or "/"


def redact_url(url: str) -> str:
    """The URL without its query string, which may carry references or keys."""
    return url.split("?", 1)[0]


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with every secret-looking field masked."""
    if isinstance(value, dict):
        return {
            k: "***" if SECRET_KEYS.search(str(k)) and v not in (None, "") else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
