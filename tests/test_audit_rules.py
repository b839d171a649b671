"""The rule table itself: complete rows, and the summaries built from findings."""

from __future__ import annotations

from provision.audit import compare
from provision.audit.inventory import VmInfo, map_nodes
from provision.audit.report import criterion_summary
from provision.audit.rules import RULES, SEVERITIES, Finding
from provision.spec import parse_spec
from results.schema import one_line


def test_every_rule_row_is_complete():
    assert {"nodes.size-mismatch", "nodes.size-drift"} <= set(RULES)
    for r in RULES.values():
        assert r.severity in SEVERITIES and r.platform in ("kvm", "vsphere", "both")
        assert all(len(getattr(r, f)) > 10 for f in ("bad", "good", "why", "fix")), r.id
        assert r.id.split(".")[0] == {"both": "nodes"}.get(r.platform, r.platform)


def test_summary_is_one_line_worst_first():
    findings = [Finding("kvm.memballoon", f"w{i}", "memballoon model=virtio", "worker") for i in range(5)]
    findings.append(Finding("kvm.cpu-model", "m0", "no CPU model", "master", node="master-0.okd"))
    text = criterion_summary(findings, 6)
    assert text.startswith("6 findings on 6 VM(s) (1 critical, 5 low): critical kvm.cpu-model [master-0.okd]")
    assert "low kvm.memballoon [w0, w1, w2 +2]" in text
    assert one_line(text) == text
    everywhere = criterion_summary(findings[:5], 5)
    assert everywhere == "5 findings on 5 VM(s) (5 low): low kvm.memballoon [all 5 VMs] memballoon model=virtio"


def _spec():
    return parse_spec({"name": "c", "base_domain": "example.test", "platform": "kvm", "network": {"machine_cidr": "198.18.70.0/24"},
                       "nodes": [{"role": "master", "count": 1, "vcpu": 4, "memory": "16GiB", "disk": "100GiB"}], "kvm": {}})


def test_size_drift_against_the_spec():
    vm = VmInfo(name="c-master-0", machine="master-0", role="master", vcpu=4, memory_mib=8192, disk_gib=100, disk="x",
                provisioning="thin")
    [f] = compare.size_drift([vm], _spec())
    assert f.rule == "nodes.size-drift" and f.observed == "memory 8192 MiB (spec 16384 MiB)"
    unmatched = VmInfo(**{**vm.__dict__, "machine": ""})
    assert compare.size_drift([unmatched], _spec()) == []


def test_nodes_mapped_by_provider_id_address_or_name():
    spec = _spec()
    m = spec.machines()[0]
    vms = [VmInfo(name="c-master-0", machine="master-0", role="master", vcpu=4, memory_mib=16384, disk_gib=100, disk="x",
                  provisioning="thin", uuid="ABC-1", ips=(str(m.ip),))]
    assert map_nodes(vms, [{"name": "n1", "provider_id": "vsphere://abc-1", "addresses": []}]) == {"c-master-0": "n1"}
    assert map_nodes(vms, [{"name": "n2", "provider_id": "", "addresses": [str(m.ip)]}]) == {"c-master-0": "n2"}
    assert map_nodes(vms, [{"name": "master-0.c.example.test", "provider_id": "", "addresses": []}]) == \
        {"c-master-0": "master-0.c.example.test"}
    assert map_nodes(vms, [{"name": "other", "provider_id": "aws:///x", "addresses": ["10.0.0.1"]}]) == {}


def test_node_groups_fill_unknown_disk_from_spec():
    vm = VmInfo(name="c-master-0", machine="master-0", role="master", vcpu=4, memory_mib=16384, disk_gib=None, disk="x",
                provisioning="thin")
    [g] = compare.node_groups([vm], _spec())
    assert (g.role, g.count, g.vcpu, g.memory_mib, g.disk_gib) == ("master", 1, 4, 16384, 100)
    assert compare.node_groups([vm])[0].disk_gib is None
