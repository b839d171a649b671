"""Deterministic MACs: one spec always yields the same MACs; different specs never share one."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from provision.spec import parse_spec

NAME = st.from_regex(r"[a-z][a-z0-9]{0,12}", fullmatch=True)


def spec(name: str, masters: int = 3, workers: int = 3):
    return parse_spec({
        "name": name, "base_domain": "okdbench.test", "platform": "kvm",
        "network": {"machine_cidr": "198.18.0.0/16"},
        "nodes": [{"role": "bootstrap", "count": 1, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"},
                  {"role": "master", "count": masters, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"},
                  {"role": "worker", "count": workers, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"}],
        "kvm": {},
    })


def macs(s) -> list[str]:
    return [m.mac for m in s.machines()]


def test_same_spec_same_macs():
    a, b = spec("alpha"), spec("alpha")
    assert macs(a) == macs(b)
    # adding workers does not move the MACs of existing nodes (their DHCP reservations survive)
    assert macs(spec("alpha", workers=5))[: len(macs(a))] == macs(a)


def test_macs_are_locally_administered_unicast():
    for mac in macs(spec("alpha", workers=20)):
        first = int(mac.split(":")[0], 16)
        assert first & 0b10 and not first & 0b01, mac


def test_many_clusters_never_share_a_mac():
    names = [f"c{i}" for i in range(300)] + ["okd", "okd-kvm", "okd-vsphere", "demo-tuned", "demo-default"]
    seen: dict[str, tuple[str, str]] = {}
    for name in names:
        for m in spec(name, workers=10).machines():
            assert m.mac not in seen, f"{m.mac}: {seen.get(m.mac)} vs {(name, m.name)}"
            seen[m.mac] = (name, m.name)
    assert len(seen) == len(names) * 14


@settings(max_examples=200, deadline=None)
@given(NAME, NAME)
def test_two_different_specs_never_collide(a, b):
    if a == b:
        return
    assert not set(macs(spec(a))) & set(macs(spec(b)))


def test_within_one_spec_all_unique():
    for name in itertools.islice((f"x{i}" for i in range(50)), 50):
        ms = macs(spec(name, workers=60))
        assert len(ms) == len(set(ms))
