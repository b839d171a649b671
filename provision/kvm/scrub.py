"""Clear the install-time ignition from this cluster's domains once their nodes have joined.

Ignition runs on first boot only; afterwards the fw_cfg file is a copy of the pull secret (and,
for the bootstrap, the cluster's initial credentials) at rest on the host. The persistent
definition loses its fw_cfg entry (a running QEMU already read the file at start) and the file
is deleted. Only domains carrying this cluster's okdbench metadata are touched.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

from provision.kvm.render import XMLNS
from provision.kvm.resources import _owned_domains
from provision.spec import ClusterSpec

log = logging.getLogger("okdbench.kvm")

IGNITION_FWCFG = "opt/com.coreos/config"


def without_ignition(xml: str) -> tuple[str, list[str]]:
    """(domain XML with the ignition fw_cfg entries removed, the files they named)."""
    ET.register_namespace("okdbench", XMLNS)
    root = ET.fromstring(xml)
    files = []
    for sysinfo in root.findall("sysinfo[@type='fwcfg']"):
        for entry in sysinfo.findall("entry"):
            if entry.get("name") == IGNITION_FWCFG:
                files.append(entry.get("file", ""))
                sysinfo.remove(entry)
        if not list(sysinfo):
            root.remove(sysinfo)
    return ET.tostring(root, encoding="unicode"), [f for f in files if f]


def clear_ignition(conn, spec: ClusterSpec) -> list[str]:
    """Drop the ignition fw_cfg entry from each owned domain and delete its file; returns what was cleared."""
    import libvirt

    cleared = []
    for dom in _owned_domains(conn, spec.name):
        xml, files = without_ignition(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
        if files:
            conn.defineXML(xml)  # the persistent definition; the running QEMU keeps what it read at start
        for f in files:
            Path(f).unlink(missing_ok=True)
            cleared.append(f"{dom.name()}: {f}")
    return cleared
