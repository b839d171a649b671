import subprocess

import pytest

from provision.kvm import libvirtd

pytestmark = pytest.mark.needs_libvirtd


def test_libvirtd_reachable_inside_and_outside_netns(libvirt_uri):
    inside = subprocess.run(["ip", "netns", "exec", "okdbench", "virsh", "-c", libvirt_uri, "list"],
                            capture_output=True, text=True)
    assert inside.returncode == 0, inside.stderr
    outside = subprocess.run(["virsh", "-c", libvirt_uri, "list"], capture_output=True, text=True)
    assert outside.returncode == 0, outside.stderr
    assert libvirtd.libvirtd_in_netns("okdbench")


def test_ensure_libvirtd_is_idempotent(libvirt_uri):
    pid = libvirtd.libvirtd_pid()
    libvirtd.ensure_libvirtd("okdbench")
    assert libvirtd.libvirtd_pid() == pid


def test_domain_type_is_a_probe_not_a_file_check():
    # /dev/kvm exists on this machine, yet QEMU cannot run a guest with it: the answer is 'qemu'.
    verdict, why = libvirtd._probe_kvm_boots()
    assert libvirtd.domain_type("qemu:///system") == ("kvm" if verdict else "qemu")
    assert why


def test_domain_type_for_test_driver(libvirt_test_uri):
    assert libvirtd.domain_type(libvirt_test_uri) == "test"
