"""Where a TensorFlow server may serve: the trust model of clusters across hosts.

TensorFlow's servers have no authentication and listen on every interface of their
machine, whatever address the cluster names (``0.0.0.0`` is fixed inside TensorFlow). So
a server is reachable on each address of each interface, and the question is not which
address it was given but which networks the machine is on.

The rule: a server may serve where no address of the machine is globally reachable, by
IANA's special-purpose address registries (Python's ``ip_address(a).is_global``):
loopback, the private ranges 10/8, 172.16/12, 192.168/16, shared 100.64/10, link-local,
fc00::/7, and the ranges never routed on the internet (documentation, benchmarking) — the
networks of a cluster's own fabric. A machine with a globally reachable address is refused
unless the user says ``--trust-network`` (a firewall they trust stands in front of it).
``dfc serve`` prints every address it is reachable on, either way.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

_SIOCGIFADDR = 0x8915


def is_private(address: str) -> bool:
    """Whether ``address`` (an IP, v4 or v6, with an optional ``%zone``) is not globally
    reachable (an IPv4-mapped IPv6 address counts as its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not ip.is_global


def interface_addresses() -> dict[str, list[str]]:
    """Every address of every interface of this machine (its network namespace): name -> IPs."""
    out: dict[str, list[str]] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                raw = fcntl.ioctl(s, _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address (or the interface is gone)
                continue
            out.setdefault(name, []).append(socket.inet_ntoa(raw[20:24]))
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                hexip, *_, name = line.split()
                ip = ipaddress.IPv6Address(bytes.fromhex(hexip))
                out.setdefault(name, []).append(str(ip))
    except OSError:
        pass
    return out


def public_addresses(addresses: dict[str, list[str]]) -> list[str]:
    """The addresses (``interface address``) outside the private ranges."""
    return [f"{name} {a}" for name, ips in sorted(addresses.items()) for a in ips if not is_private(a)]


def check_serve(trust_network: bool, addresses: dict[str, list[str]] | None = None) -> str | None:
    """Why a server must not start on this machine, or None: an address is public and the
    user did not say ``--trust-network``."""
    public = public_addresses(interface_addresses() if addresses is None else addresses)
    if public and not trust_network:
        return (
            f"this machine is reachable on {', '.join(public)}, outside the private ranges, and a "
            "TensorFlow server has no authentication: anyone who reaches it can run code as you. "
            "Serve on a machine of a private network, or pass --trust-network if a firewall you "
            "trust stands in front of it"
        )
    return None
