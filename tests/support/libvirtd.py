"""libvirt fixtures: a real libvirtd (started in network namespace `okdbench` when none runs) and the test driver."""

from __future__ import annotations

import pytest

from plumbing.errors import UserError
from provision.kvm import libvirtd

NETNS = "okdbench"


@pytest.fixture(scope="session")
def libvirt_uri() -> str:
    """qemu:///system served by a libvirtd whose VM networks live in netns `okdbench`.

    A libvirtd already running outside that namespace would put test bridges and dnsmasq on the
    machine's network, so the tests refuse to use it.
    """
    try:
        libvirtd.ensure_libvirtd(NETNS)
    except UserError as exc:
        pytest.skip(f"no libvirtd: {exc}")
    if not libvirtd.libvirtd_in_netns(NETNS):
        pytest.skip(f"libvirtd runs outside network namespace {NETNS}; stop it so the tests can start their own")
    return libvirtd.SYSTEM_URI


@pytest.fixture(scope="session")
def libvirt_test_uri() -> str:
    """libvirt's in-memory test driver: fast, no daemon, a fresh default state per connection."""
    return "test:///default"
