"""The load's target: only a loopback address is accepted."""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse


class LoadError(Exception):
    """The load cannot run as asked (non-loopback target, failed seeding, ...)."""


# --------------------------------------------------------------------------- target


def loopback_target(url: str) -> tuple[str, int]:
    """Return ``(host, port)`` of ``url`` or raise :class:`LoadError` if it is not loopback.

    IP literals must be in 127.0.0.0/8 or ``::1``; a host name is accepted only
    when every address it resolves to is a loopback address.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise LoadError("the target must be an http:// URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise LoadError("the target must be the server's root, e.g. http://127.0.0.1:8778")
    host = parts.hostname
    if not host:
        raise LoadError("the target URL has no host")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise LoadError("the target URL has an invalid port") from exc
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise LoadError(f"cannot resolve {host!r}") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses or not all(address.is_loopback for address in addresses):
        raise LoadError(f"refusing to load {host!r}: only loopback targets are allowed")
    return host, port
