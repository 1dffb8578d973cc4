"""Placeholder: the kalixo_v2 simulator is being written."""

from vendors.sandbox.core import Request, Response, Router

SUPPLIER = "kalixo_v2"
PREFIX = "/kalixo-v2"
RATE_LIMIT = 60
SERVER_ERROR_STATUS = 502
router = Router()


def account_of(request: Request) -> str | None:
    return None


def error(status: int, message: str, code: str = "") -> Response:
    return Response(status, {"message": message})


def list_orders(account: str | None) -> list[dict]:
    return []
