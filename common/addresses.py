"""Which supplier addresses the portal may call.

In production (``SUPPLIER_URLS_ALLOW_LOCAL`` off, the default without ``DEBUG``) a supplier URL
must be https and its host must resolve only to public addresses: no loopback, private,
link-local or otherwise reserved ranges, so an operator's typed URL cannot point the workers at
the portal's own network. The sandboxes run on 127.0.0.1, so development allows any http(s)
URL. The admin's form and the HTTP seam both ask ``url_problem``; the seam asks again before
every request, since a name may resolve differently later.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


def origin(url: str) -> str:
    """Scheme, host and port: where a request to ``url`` goes."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{parts.port or ''}"


def url_problem(url: str) -> str | None:
    """Why the portal may not call ``url``, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "A supplier URL must be an http(s) URL with a host."
    if settings.SUPPLIER_URLS_ALLOW_LOCAL:
        return None
    if parts.scheme != "https":
        return "A supplier URL must use https."
    try:
        found = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443,
                                                           proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError):
        return f"The host {parts.hostname} cannot be resolved."
    private = sorted(a for a in found if not ipaddress.ip_address(a.split("%")[0]).is_global)
    if private:
        return (f"The host {parts.hostname} resolves to an address that is not public "
                f"({', '.join(private)}).")
    return None
