"""Free ports for services a run or a test starts, and the addresses they are reached at.

A service binds loopback unless the run has workers elsewhere; then it binds the scenario's
``workers.listen``. An unspecified address (``0.0.0.0``, ``::``) binds every interface: this
machine reaches it on loopback (:func:`connect_address`), other machines at the address of its
default route (:func:`reachable_address`).
"""

from __future__ import annotations

import ipaddress
import socket

_PROBE = {4: "192.0.2.1", 6: "2001:db8::1"}  # documentation addresses: a UDP connect sends nothing


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.05) -> bool:
    """Something accepts TCP connections on ``host:port`` right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _unspecified(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return address if address.is_unspecified else None


def connect_address(host: str) -> str:
    """The address this machine connects to a service bound to ``host`` at."""
    address = _unspecified(host)
    if address is None:
        return host
    return "::1" if address.version == 6 else "127.0.0.1"


def reachable_address(host: str) -> str:
    """The address other machines reach a service bound to ``host`` at: ``host`` itself, or for an
    unspecified one the source address of this machine's default route (its name if it has none)."""
    address = _unspecified(host)
    if address is None:
        return host
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((_PROBE[address.version], 9))  # chooses a route; no packet leaves
            return str(sock.getsockname()[0])
    except OSError:
        return socket.gethostname()


def url_host(host: str) -> str:
    """``host`` as a URL or ``HOST:PORT`` writes it (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
