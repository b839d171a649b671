"""okdbench demo: the planning pieces, the example specs, and the short CI form end to end on real VMs."""

from __future__ import annotations

import ipaddress
import json
import math
from pathlib import Path

import pytest
import yaml

from okdbench import demo
from provision.spec import load_spec, parse_spec

BENCH_NET = ipaddress.ip_network("198.18.0.0/15")


def test_runs_alternate_which_platform_goes_first():
    assert demo.run_order(3) == [("kvm-default", 0), ("kvm-tuned", 0), ("kvm-tuned", 1), ("kvm-default", 1),
                                 ("kvm-default", 2), ("kvm-tuned", 2)]


def test_demo_spec_fills_the_guest_and_replaces_probe_arguments(tmp_path):
    template = yaml.safe_load((demo.EXAMPLES / "demo-kvm-tuned.yaml").read_text())
    template["kvm"]["kernel_args"] = "okdbench.repeat=9 okdbench.linger=5 okdbench.probes=cpu"
    data = demo.demo_spec(template, kernel=Path("/k/vmlinuz"), initrd=Path("/k/initrd.img"), repeat=2)
    spec = parse_spec(data)
    assert spec.kvm.kernel == "/k/vmlinuz" and spec.kvm.initrd == "/k/initrd.img"
    assert spec.kvm.kernel_args == "okdbench.linger=5 okdbench.probes=cpu,fsync,seqwrite,etcd,rtt okdbench.repeat=2 okdbench.gapwatch=600"
    assert spec.resilience.disruptions == ["freeze", "reset"] and spec.resilience.freeze_s == 5
    assert template["kvm"]["kernel_args"].startswith("okdbench.repeat=9"), "the template itself is left alone"


def test_example_specs_differ_only_in_tuning_and_stay_on_the_benchmark_network():
    specs = {label: load_spec(demo.EXAMPLES / f"demo-{label}.yaml") for label in demo.LABELS}
    default, tuned = specs["kvm-default"], specs["kvm-tuned"]
    for spec in specs.values():
        assert spec.okd.guest == "testguest" and spec.platform == "kvm"
        assert spec.network.machine_cidr.subnet_of(BENCH_NET)
        # Relative kernel paths resolve against the spec file, into the test guest cache.
        assert spec.kvm.kernel.startswith(str(demo.CACHE / "testguest"))
    assert [g.model_dump() for g in default.nodes] == [g.model_dump() for g in tuned.nodes]
    assert default.name != tuned.name and default.network.machine_cidr != tuned.network.machine_cidr
    assert default.kvm.tuning.cpu_mode == "default" and default.kvm.tuning.disk_cache == "default"
    assert tuned.kvm.tuning == type(tuned.kvm.tuning)(), "kvm-tuned is okdbench's template defaults"


def test_bad_arguments_are_one_line_errors(tmp_path):
    from plumbing.errors import UserError

    with pytest.raises(UserError, match=r"^--runs: 0 is not allowed"):
        demo.run_demo(runs=0, out=tmp_path)
    with pytest.raises(UserError, match=r"^--repeat: 0 is not allowed"):
        demo.run_demo(runs=1, repeat=0, out=tmp_path)


GUEST_CRITERIA = {"guest.boot", "guest.ignition", "guest.nic", "guest.dhcp", "guest.dns"}


def _only_foreign_overcommit(criterion: str, detail: str) -> bool:
    """An audit failure whose only finding is vCPU overcommit counted over more domains than the demo's two."""
    import re

    m = re.match(r"1 finding on \d+ VM\(s\) \(1 high\): high kvm\.vcpu-overcommit .* in (\d+) domains", detail)
    return criterion == "platform-audit" and m is not None and int(m.group(1)) > 2


@pytest.mark.slow
@pytest.mark.needs_libvirtd
def test_short_demo_end_to_end(libvirt_uri, tmp_path):
    """The CI form: 3 runs per platform, repeat 1, real libvirtd + QEMU, then the report.

    No wall-clock bound: each session stops waiting for a guest only when it went silent for
    longer than its probes' pace allows (guestlog.Pace), so a loaded machine is slower, not red.
    """
    from reports.render import slug
    from results.store import load_runs

    lines: list[str] = []
    placement = demo.Placement(prefix="ci-", net_offset=176)  # beside a user's own demo on this libvirtd
    result = demo.run_demo(runs=3, repeat=1, out=tmp_path / "demo", progress=demo.Progress(lines.append),
                           placement=placement)

    assert [(r.label, r.index) for r in result.runs] == demo.run_order(3)
    assert all(r.status == "complete" for r in result.runs), [(r.label, r.status, str(r.log)) for r in result.runs]
    assert any("provisioning VMs" in line for line in lines) and lines[0].startswith("[00:")

    html = result.report.read_text()
    assert "kvm-default" in html and "kvm-tuned" in html

    runs = load_runs([result.results_dir])
    assert sorted(r.platform for r in runs.runs) == ["kvm-default"] * 3 + ["kvm-tuned"] * 3
    for info in runs.runs:
        facts = info.hypervisor or {}
        assert facts.get("domain_type") in ("kvm", "qemu"), (info.run_id, info.status, facts)
        assert facts.get("emulated") is (facts["domain_type"] != "kvm"), (info.run_id, facts)

    crit = runs.criteria
    ran = crit[crit["status"] != "skipped"]
    # Every criterion that applies passed, bar one: the audit flags kvm-default's libvirt defaults.
    # On a shared host, other VMs running at the same time make the audit's overcommit rule fire
    # on kvm-tuned too: that is the audit being right about the host, not a demo failure.
    foreign = [f for f in result.failures if _only_foreign_overcommit(f.criterion, f.detail)]
    unexpected = [f for f in result.failures if not f.expected and f not in foreign]
    assert not unexpected, [(f.label, f.criterion, f.detail) for f in unexpected]
    assert set(ran["status"]) <= {"passed", "failed"}
    for f in result.failures:
        if f.criterion == "security-audit":  # a host without SELinux/AppArmor: no VM is confined
            assert "kvm.svirt" in f.detail, f.detail
            continue
        assert f in foreign or (f.label == "kvm-default" and f.criterion == "platform-audit" and "kvm.cpu-model" in f.detail)
    tuned = crit[(crit["platform"] == "kvm-tuned") & (crit["criterion"] != "security-audit")]
    assert all(s != "failed" or _only_foreign_overcommit(c, d) for c, s, d in zip(tuned["criterion"], tuned["status"], tuned["detail"]))
    for label in demo.LABELS:
        passed = set(crit[(crit["platform"] == label) & (crit["status"] == "passed")]["criterion"])
        assert GUEST_CRITERIA <= passed
    skipped = crit[crit["status"] == "skipped"]
    assert len(skipped) and (skipped["detail"] == "no OKD cluster (pass --kubeconfig or an OKD --spec)").all()

    s = runs.samples
    for label in demo.LABELS:
        mine = s[s["platform"] == label]
        assert (mine["metric"] == "provision.vms.duration").sum() == 3
        assert (mine["metric"] == "guest.boot.userspace").sum() == 3 * 2  # 3 runs x 2 VMs
        p50 = mine[mine["metric"] == "guest.disk.fdatasync.p50"].sort_values(["run_id", "labels"])
        p99 = mine[mine["metric"] == "guest.disk.fdatasync.p99"].sort_values(["run_id", "labels"])
        iops = mine[mine["metric"] == "guest.disk.fdatasync.iops"]
        assert len(p50) == len(p99) == len(iops) == 3 * 2
        for v in list(p50["value"]) + list(p99["value"]) + list(iops["value"]):
            assert math.isfinite(v) and v > 0
        assert (p99["value"].to_numpy() >= p50["value"].to_numpy()).all()
        for metric in ("guest.cpu.sha256", "guest.disk.seqwrite", "guest.net.rtt.avg", "guest.etcd.wal_fsync.p99",
                       "guest.etcd.backend_commit.p99", "guest.etcd.put.p99", "guest.etcd.put.rate"):
            assert (mine["metric"] == metric).sum() == 3 * 2, metric
            assert (mine[mine["metric"] == metric]["value"] > 0).all(), metric
        for kind in ("freeze", "reset"):  # the resilience step: one worker guest per run
            gaps = mine[mine["metric"] == f"resilience.{kind}.unavailable_s"]["value"]
            assert len(gaps) == 3 and (gaps > 0).all(), (kind, list(gaps))
    assert "What this demo shows" in html
    assert 'id="primary"' in html and f'<a href="#m-{slug(demo.PRIMARY)}">{demo.PRIMARY}</a>' in html
    assert f"Its question, set before the runs, is {demo.PRIMARY}" in html
    assert 'id="resilience"' in html and "A worker freeze cost" in html

    # Nothing of the demo is left on the hypervisor.
    import libvirt

    conn = libvirt.open(libvirt_uri)
    try:
        names = [d.name() for d in conn.listAllDomains()] + [n.name() for n in conn.listAllNetworks()]
    finally:
        conn.close()
    assert not [n for n in names if n.startswith(("ci-demo-default", "ci-demo-tuned", "okd-ci-demo-"))], names
    summary = json.dumps({"runs": len(result.runs), "seconds": round(result.seconds, 1)})
    print(f"demo timing: {summary}")


def _lines_until(stream, needle: str, silence_s: float, seen: list[str]) -> bool:
    """Read `stream` until a line contains `needle`; False at its end or after `silence_s` without a line."""
    import queue
    import threading

    q: queue.Queue = queue.Queue()

    def pump():
        for line in stream:
            q.put(line)
        q.put(None)

    if not hasattr(stream, "_okdbench_q"):
        threading.Thread(target=pump, daemon=True).start()
        stream._okdbench_q = q
    q = stream._okdbench_q
    while True:
        try:
            line = q.get(timeout=silence_s)
        except queue.Empty:
            return False
        if line is None:
            return False
        seen.append(line)
        if needle in line:
            return True


@pytest.mark.slow
@pytest.mark.needs_libvirtd
def test_sigterm_mid_run_tears_everything_down_and_the_run_reads_aborted(libvirt_uri, tmp_path):
    """SIGTERM to `okdbench demo` while its guests run: nothing of it stays in libvirt, run.json says aborted."""
    import signal
    import subprocess
    import sys

    from results.store import load_runs

    placement = demo.Placement(prefix="demo19-sig-", net_offset=172)  # beside any other demo on this libvirtd
    out = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "okdbench", "demo", "--runs", "1", "--repeat", "1", "--out", str(out),
                             "--prefix", placement.prefix, "--net-offset", str(placement.net_offset)],
                            cwd=demo.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        # Bounded by progress: each phase line must come within 5 minutes of the one before.
        assert _lines_until(proc.stdout, "VMs booting, probes running", 300, seen), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        while _lines_until(proc.stdout, "\n", 300, seen):
            pass
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(seen)
    assert code == 130, text
    assert "interrupted: the session tears down what it provisioned" in text
    assert "its run reads aborted; nothing of it is left in libvirt" in text, text
    runs = load_runs([out / "results"])
    assert [r.status for r in runs.runs] == ["aborted"], text
    # Nothing with the demo's names in libvirt: domains, networks, volumes.
    import libvirt

    conn = libvirt.open(libvirt_uri)
    try:
        names = [d.name() for d in conn.listAllDomains()] + [n.name() for n in conn.listAllNetworks()]
        pool = conn.storagePoolLookupByName(demo.POOL)
        pool.refresh(0)
        names += pool.listVolumes()
    finally:
        conn.close()
    prefix = placement.prefix
    assert not [n for n in names if n.startswith((prefix, f"okd-{prefix}"))], names
    assert not list((out / "work").glob("*/*.ign")), "the workdir (ignition) goes with the cluster"


def _demo_results(root: Path, cpu: dict[str, float], seqwrite: dict[str, float],
                  wal: dict[str, tuple[float, float, float]] | None = None) -> Path:
    """Three emulated runs a side of the demo's two labels, with run-to-run wobble of ~2 % (wal: per-run values)."""
    from results.schema import RunInfo, Sample, iso, utcnow
    from results.store import RunWriter, new_run_id

    wobble = (0.98, 1.0, 1.02)
    for label in demo.LABELS:
        for i in range(3):
            info = RunInfo(run_id=new_run_id(), platform=label, cluster=label, started=iso(utcnow()),
                           hypervisor={"domain_type": "qemu", "emulated": True})
            w = RunWriter(root, info)
            for node in ("master-0", "worker-0"):
                for metric, level, better in (("guest.cpu.sha256", cpu[label], "higher"),
                                              ("guest.disk.seqwrite", seqwrite[label], "higher"),
                                              ("guest.net.rtt.avg", 10.0 * wobble[(i + 1) % 3], "lower")):
                    w.record_sample(Sample(run_id=info.run_id, platform=label, cluster=label, suite="guest_probes",
                                           metric=metric, value=level * wobble[i], unit="MB/s", better=better,
                                           labels={"node": node}))
                if wal:
                    w.record_sample(Sample(run_id=info.run_id, platform=label, cluster=label, suite="guest_probes",
                                           metric=demo.PRIMARY, value=wal[label][i], unit="ms", better="lower",
                                           labels={"node": node}))
            w.finish("complete")
    return root


def test_demo_report_explains_its_verdicts_honestly(tmp_path):
    from reports.analysis import build_report
    from reports.model import Options
    from reports.render import render_html, slug
    from results.store import load_runs

    # As measured under emulation: the tuned CPU model hashes faster, cache=none writes slower.
    root = _demo_results(tmp_path, cpu={"kvm-default": 7.0, "kvm-tuned": 14.0},
                         seqwrite={"kvm-default": 200.0, "kvm-tuned": 150.0})
    report = build_report(load_runs([root]), "kvm-default", "kvm-tuned", with_charts=False)
    note = report.demo_note
    assert note is not None and note.emulated and note.runs == 3
    assert [m.metric for m in note.cpu_better] == ["guest.cpu.sha256"]
    assert [m.metric for m in note.disk_worse] == ["guest.disk.seqwrite"] and not note.disk_better
    html = render_html(report)
    assert "What this demo shows" in html
    assert "cache='none' bypasses the host page cache" in html and "protects etcd" in html
    assert "QEMU's 'maximum' model" in html
    assert "Its question, set before the runs" not in html  # no --primary: the note does not claim one

    # Nothing conclusive: the note says so and how many runs would do.
    flat = _demo_results(tmp_path / "flat", cpu={"kvm-default": 7.0, "kvm-tuned": 7.0},
                         seqwrite={"kvm-default": 200.0, "kvm-tuned": 200.0})
    note = build_report(load_runs([flat]), "kvm-default", "kvm-tuned", with_charts=False).demo_note
    assert note is not None and not note.conclusive and note.closest is not None
    # The primary question's runs vary past the limit on kvm-default (its page cache): the note says
    # why, and does not promise that more runs would decide it.
    def primary_report(name: str, wal: dict[str, tuple[float, float, float]]):
        folder = _demo_results(tmp_path / name, cpu={"kvm-default": 7.0, "kvm-tuned": 7.0},
                               seqwrite={"kvm-default": 200.0, "kvm-tuned": 200.0}, wal=wal)
        return build_report(load_runs([folder]), "kvm-default", "kvm-tuned", Options(primary=(demo.PRIMARY,)),
                            with_charts=False)

    report = primary_report("noisy", {"kvm-default": (0.6, 1.4, 0.9), "kvm-tuned": (1.6, 1.65, 1.7)})
    note = report.demo_note
    assert note.primary.verdict == "variance too high" and note.noisy_platform == "kvm-default"
    assert note.closest is None or note.closest.metric != demo.PRIMARY
    html = render_html(report)
    assert f"{demo.PRIMARY} gets no verdict: its runs on kvm-default vary too much" in html
    assert "That is kvm-default's page cache at work" in html
    # The same kind of spread with a gap no run bridges: the verdict stands, marked noisy, and the
    # note says it holds despite the noise (and why kvm-default's runs move).
    report = primary_report("gap", {"kvm-default": (0.5, 0.9, 0.7), "kvm-tuned": (2.4, 2.5, 2.6)})
    note = report.demo_note
    assert note.primary.verdict == "worse" and note.primary.noisy and note.conclusive
    assert note.noisy_platform == "kvm-default" and note.noisy_cv > report.options.cv_limit
    assert "Its runs vary past the 25" in note.primary.sentence and "the difference holds" in note.primary.sentence
    html = render_html(report)
    assert f"{demo.PRIMARY} reads “worse” although its runs on kvm-default vary by more than the limit" in html
    assert "That is kvm-default's page cache at work" in html
    row = html[html.index(f'<td class="metric"><a href="#m-{slug(demo.PRIMARY)}"'):]
    assert "noisy runs (CV over 25" in row[:row.index("</tr>")]
    # Any other pair of platforms is not the demo: no note.
    assert build_report(load_runs([root]), "kvm-tuned", "kvm-default", with_charts=False).demo_note is None
