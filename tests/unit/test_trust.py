"""Where a server may serve (dfc/runtime/trust.py): every address of the machine counts,
since TensorFlow listens on all of them."""

from __future__ import annotations

import pytest

from dfc.runtime import trust


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.0.0.2",
        "10.3.4.5",
        "172.16.0.9",
        "172.31.255.1",
        "192.168.10.1",
        "100.64.0.1",
        "169.254.3.3",
        "192.0.2.2",
        "::1",
        "fd00::2",
        "fe80::1%eth0",
    ],
)
def test_private_addresses(address):
    assert trust.is_private(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "172.32.0.1", "1.1.1.1", "2a00:1450:4001::1", "::ffff:8.8.8.8"])
def test_globally_reachable_addresses(address):
    assert not trust.is_private(address)


def test_a_machine_with_one_public_address_is_refused_unless_trusted():
    machine = {"lo": ["127.0.0.1", "::1"], "ib0": ["10.0.0.7"], "eth1": ["8.8.4.4"]}
    why = trust.check_serve(False, machine)
    assert why and "eth1 8.8.4.4" in why and "--trust-network" in why and "10.0.0.7" not in why
    assert trust.check_serve(True, machine) is None


def test_a_machine_on_private_networks_may_serve():
    assert trust.check_serve(False, {"lo": ["127.0.0.1"], "ib0": ["10.0.0.7"], "eth0": ["fd00::2"]}) is None


def test_this_machine_has_its_loopback_address():
    assert "127.0.0.1" in trust.interface_addresses().get("lo", [])
