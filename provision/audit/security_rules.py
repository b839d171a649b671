"""The security rule set: one row per isolation or exposure setting, with its primary source in `why`.

Severity follows what an attacker gains: high = another tenant, anyone on the network or any
vCenter reader reaches the cluster's secrets or the host; medium = a guest process can disturb
the node or secrets rest where more people can read them; low = hardening or an informational
feature (Secure Boot, vTPM, encryption) that only some clusters require.
"""

from __future__ import annotations

from provision.audit.rule import Rule

LIBVIRT_DOMAIN = "https://libvirt.org/formatdomain.html"
LIBVIRT_QEMU = "https://libvirt.org/drvqemu.html"
VSPHERE_SECURITY = "VMware vSphere Security guide / Security Configuration Guide (VM hardening)"

SECURITY_RULES = [
    # ---------------------------------------------------------------- KVM (domain XML, capabilities, host files)
    Rule(
        "kvm.svirt", "kvm", "high", "VM not confined by sVirt (SELinux/AppArmor)",
        bad="domain <seclabel type='none'/> for the MAC driver, or the host's primary security driver is 'none' "
            "(virNodeGetSecurityModel / capabilities <secmodel>; qemu.conf security_driver = \"none\")",
        good="host security driver selinux or apparmor and each domain labelled dynamically (no <seclabel> or "
             "<seclabel type='dynamic'/>)",
        why="sVirt gives each QEMU process its own MAC label so a guest that escapes QEMU cannot open other VMs' "
            f"disks or host files; seclabel type 'none' disables that confinement ({LIBVIRT_DOMAIN}#security-label, "
            f"{LIBVIRT_QEMU}#driver-security-architecture)",
        fix="enable SELinux (security_driver=\"selinux\") or AppArmor on the host and remove <seclabel type='none'/> "
            "from the domains (virsh edit)",
        kind="security",
    ),
    Rule(
        "kvm.qemu-root", "kvm", "high", "QEMU runs as root",
        bad="qemu.conf user = \"root\" (or the DAC <baselabel> in capabilities is +0:…) or a domain "
            "<seclabel model='dac'><label>root:root</label> (uid 0)",
        good="QEMU as an unprivileged user (libvirt-qemu / qemu, the distribution default)",
        why="libvirt's system instance runs QEMU as the qemu.conf user; as root a QEMU exploit owns the host and "
            f"DAC separation between guests is gone ({LIBVIRT_QEMU}#posix-users-groups, "
            f"{LIBVIRT_DOMAIN}#security-label)",
        fix="set user = \"libvirt-qemu\" and group = \"libvirt-qemu\" (Debian; qemu:qemu on Fedora/RHEL) in "
            "/etc/libvirt/qemu.conf and remove static DAC labels of uid 0 from the domains",
        kind="security",
    ),
    Rule(
        "kvm.console-exposed", "kvm", "high", "Graphical console reachable from the network without TLS or auth",
        bad="<graphics type='vnc'|'spice'> listening on a non-loopback address (listen=, <listen address=>, "
            "qemu.conf vnc_listen/spice_listen) with no TLS (vnc_tls/spice_tls, SPICE tlsPort) or no password "
            "and no x509 client verification",
        good="no graphics, a unix socket or 127.0.0.1/::1 listener (reach it through SSH), or TLS with a password "
             "or vnc_tls_x509_verify",
        why="the console is keyboard, screen and boot menu of the node: unauthenticated it lets anyone on the "
            "network reboot into single-user mode; without TLS the password and session travel in clear "
            f"({LIBVIRT_DOMAIN}#graphical-framebuffers; qemu.conf vnc_listen/vnc_tls/vnc_tls_x509_verify)",
        fix="remove <graphics> from OKD nodes (the serial console suffices) or listen on 127.0.0.1; otherwise set "
            "vnc_tls = 1 with vnc_tls_x509_verify = 1 in qemu.conf",
        kind="security",
    ),
    Rule(
        "kvm.libvirt-tcp", "kvm", "high", "libvirt management API on plain TCP",
        bad="libvirtd.conf/virtproxyd.conf listen_tcp = 1, a libvirtd-tcp.socket/virtproxyd-tcp.socket unit "
            "enabled, or the audit itself connected through qemu+tcp://; worst with auth_tcp = \"none\"",
        good="local unix socket, qemu+ssh://, or qemu+tls:// (listen_tls with x509 client certificates)",
        why="whoever reaches libvirt's read-write API controls every VM and can define a domain that mounts any "
            "host file; the TCP listener is unencrypted and auth_tcp=\"none\" removes its SASL authentication "
            "(https://libvirt.org/remote.html, https://libvirt.org/daemons.html; libvirtd.conf listen_tcp/auth_tcp)",
        fix="set listen_tcp = 0 (disable libvirtd-tcp.socket / virtproxyd-tcp.socket) and use qemu+ssh:// or "
            "qemu+tls:// for remote management",
        kind="security",
    ),
    Rule(
        "kvm.ignition-readable", "kvm", "high", "Node ignition readable by other host users",
        bad="the fw_cfg ignition file (<sysinfo type='fwcfg'> opt/com.coreos/config) world-readable, or "
            "group-readable by a group other than root or QEMU's",
        good="mode 0600/0640, owner root or the QEMU user, group root or QEMU's",
        why="OKD node ignition carries the pull secret and, for the bootstrap, the cluster's initial certificates "
            "and keys; QEMU only needs to read it once at start "
            "(https://docs.fedoraproject.org/en-US/fedora-coreos/provisioning-libvirt/, "
            f"{LIBVIRT_DOMAIN}#smbios-system-information)",
        fix="chmod 0640 (or 0600) the ignition files and keep their directory non-listable (okdbench renders them 0640)",
        kind="security",
    ),
    Rule(
        "kvm.ignition-left", "kvm", "medium", "Node ignition left on the host after the node joined",
        bad="the fw_cfg ignition file still exists (and the domain still references it) once the VM's node "
            "has joined the cluster",
        good="ignition file removed and the fw_cfg entry dropped from the persistent domain after install "
             "(okdbench provision does both)",
        why="ignition runs only on first boot; afterwards the file is just a copy of the pull secret and "
            "bootstrap credentials at rest on the hypervisor (https://coreos.github.io/ignition/, "
            f"{LIBVIRT_DOMAIN}#smbios-system-information)",
        fix="okdbench provision clears it after install-complete; by hand: virsh edit (drop the fwcfg <entry>) "
            "and delete the .ign file",
        kind="security",
    ),
    Rule(
        "kvm.volume-permissions", "kvm", "medium", "Node disk image readable or writable by others",
        bad="a writable disk's image (libvirt volume <permissions><mode> or the file's mode) with o+r or o+w",
        good="mode 0600 (libvirt's default for volumes it creates), owned by root or the QEMU user",
        why="a node's disk holds etcd (every Secret of the cluster) and the kubelet's credentials: any local "
            "user who can read the image reads them, and o+w lets them tamper with the node "
            "(https://libvirt.org/formatstorage.html#storage-volume-target-elements)",
        fix="chmod 0600 the images (or set <permissions><mode>0600</mode> on the pool/volume)",
        kind="security",
    ),
    Rule(
        "kvm.secure-boot", "kvm", "low", "No UEFI Secure Boot (informational)",
        bad="BIOS firmware, or UEFI without <feature enabled='yes' name='secure-boot'/> / <loader secure='yes'>",
        good="<os firmware='efi'> with the secure-boot firmware feature enabled (FCOS boots with Secure Boot)",
        why="Secure Boot verifies the boot chain so a tampered kernel or bootloader does not start; required by "
            f"some compliance baselines, optional for OKD ({LIBVIRT_DOMAIN}#bios-bootloader)",
        fix="define nodes with <os firmware='efi'><firmware><feature enabled='yes' name='secure-boot'/>"
            "<feature enabled='yes' name='enrolled-keys'/></firmware></os> (needs OVMF)",
        kind="security",
    ),
    Rule(
        "kvm.vtpm", "kvm", "low", "No virtual TPM (informational)",
        bad="no <tpm> device",
        good="<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>",
        why="a TPM lets the node seal disk-encryption keys (FCOS/RHCOS LUKS with Clevis TPM2 pin) and measure "
            f"its boot; without one, disk encryption needs a network key server ({LIBVIRT_DOMAIN}#tpm-device)",
        fix="add a swtpm-backed <tpm model='tpm-crb'> (package swtpm) where the cluster needs disk encryption",
        kind="security",
    ),
    # ---------------------------------------------------------------- vSphere (extraConfig, config, session)
    Rule(
        "vsphere.ignition-guestinfo", "vsphere", "high", "Ignition left in guestinfo after install",
        bad="extraConfig guestinfo.ignition.config.data non-empty",
        good="guestinfo.ignition.config.data cleared once the node joined (okdbench provision does it)",
        why="the ignition carries the pull secret and the cluster's initial certificates; extraConfig is "
            "readable by every vCenter user with read access to the VM and, through guestinfo, by processes "
            "in the guest (OKD/OpenShift vSphere UPI docs set it only for first boot; "
            f"{VSPHERE_SECURITY}: guestinfo variables)",
        fix="okdbench provision clears it after install-complete; by hand: set guestinfo.ignition.config.data "
            "(and .encoding) to an empty value (govc vm.change -e guestinfo.ignition.config.data=)",
        kind="security",
    ),
    Rule(
        "vsphere.copy-paste", "vsphere", "medium", "Console copy/paste enabled",
        bad="isolation.tools.copy.disable or isolation.tools.paste.disable = FALSE",
        good="absent (vSphere disables both by default) or TRUE",
        why="copy and paste between the remote console and the guest is a data channel around every network "
            f"control; VMware disables it by default and says to keep it so ({VSPHERE_SECURITY}, vSphere 6.0+: "
            "disable copy and paste operations between guest and remote console)",
        fix="remove the FALSE values or set isolation.tools.copy.disable and isolation.tools.paste.disable = TRUE",
        kind="security",
    ),
    Rule(
        "vsphere.device-connectable", "vsphere", "medium", "Guest may disconnect devices",
        bad="isolation.device.connectable.disable not TRUE",
        good="isolation.device.connectable.disable = TRUE",
        why="without it an unprivileged process in the guest can disconnect the node's NIC or CD-ROM through "
            f"VMware Tools, taking the node off the cluster network ({VSPHERE_SECURITY}: prevent a virtual machine "
            "user or process from disconnecting devices, VM.prevent-device-interaction-connect)",
        fix="set the advanced parameter isolation.device.connectable.disable = TRUE on the template and VMs",
        kind="security",
    ),
    Rule(
        "vsphere.disk-shrink", "vsphere", "low", "Guest may shrink/wipe virtual disks",
        bad="isolation.tools.diskShrink.disable or isolation.tools.diskWiper.disable not TRUE",
        good="isolation.tools.diskShrink.disable and isolation.tools.diskWiper.disable = TRUE",
        why="non-administrative guest users can start disk shrinking; repeated, it makes the disk unavailable "
            f"(denial of service on etcd) ({VSPHERE_SECURITY}: VM.disable-disk-shrinking-shrink / -wiper)",
        fix="set isolation.tools.diskShrink.disable = TRUE and isolation.tools.diskWiper.disable = TRUE",
        kind="security",
    ),
    Rule(
        "vsphere.setinfo-limit", "vsphere", "low", "Guest may write large VMX informational data",
        bad="tools.setInfo.sizeLimit above 1048576 bytes",
        good="absent (1 MiB default) or at most 1048576",
        why="the guest writes name-value pairs into the VM's configuration through VMware Tools; an unbounded "
            f"size lets it fill the datastore ({VSPHERE_SECURITY}: limit informational messages from the VM to "
            "the VMX file, VM.limit-setinfo-size)",
        fix="remove the override or set tools.setInfo.sizeLimit = 1048576",
        kind="security",
    ),
    Rule(
        "vsphere.remote-display", "vsphere", "low", "Several simultaneous console sessions allowed",
        bad="RemoteDisplay.maxConnections absent or above 1",
        good="RemoteDisplay.maxConnections = 1",
        why="with several console sessions a second user can watch an administrator's session on the node; one "
            f"session at a time is the hardening baseline ({VSPHERE_SECURITY}: VM.limit-console-connections; "
            "CIS VMware ESXi 7.0 8.1.1)",
        fix="set the advanced parameter RemoteDisplay.maxConnections = 1",
        kind="security",
    ),
    Rule(
        "vsphere.log-rotation", "vsphere", "low", "VM log files not bounded",
        bad="log.rotateSize absent or 0 (vmware.log grows without limit) or log.keepOld above 10",
        good="log.rotateSize = 2048000 (or less, not 0) and log.keepOld = 10 or fewer",
        why="a guest that makes the VMX log a lot (e.g. through tools messages) fills the datastore shared with "
            f"other nodes ({VSPHERE_SECURITY}: VM.limit-log-size / VM.limit-log-number)",
        fix="set log.rotateSize = 2048000 and log.keepOld = 10",
        kind="security",
    ),
    Rule(
        "vsphere.secure-boot", "vsphere", "low", "No UEFI Secure Boot (informational)",
        bad="config.firmware not efi or bootOptions.efiSecureBootEnabled false",
        good="firmware efi with efiSecureBootEnabled = true",
        why="Secure Boot verifies the boot chain so a tampered kernel or bootloader does not start; required by "
            f"some compliance baselines, optional for OKD ({VSPHERE_SECURITY}: UEFI Secure Boot for VMs)",
        fix="on the template: Boot Options > Firmware EFI, Secure Boot enabled (powered off)",
        kind="security",
    ),
    Rule(
        "vsphere.vtpm", "vsphere", "low", "No virtual TPM (informational)",
        bad="no VirtualTPM device",
        good="a VirtualTPM device (needs a key provider)",
        why="a TPM lets the node seal disk-encryption keys (Clevis TPM2 pin) and measure its boot "
            f"({VSPHERE_SECURITY}: securing virtual machines with a virtual TPM)",
        fix="add a vTPM to the template once a key provider is configured in vCenter",
        kind="security",
    ),
    Rule(
        "vsphere.encryption", "vsphere", "low", "VM files not encrypted (informational)",
        bad="config.keyId unset",
        good="VM encryption storage policy applied (config.keyId set)",
        why="without VM encryption a copy of the datastore (backup, snapshot, stolen disk) exposes etcd's data "
            f"at rest ({VSPHERE_SECURITY}: virtual machine encryption)",
        fix="apply the VM Encryption storage policy to the node VMs (needs a key provider)",
        kind="security",
    ),
    Rule(
        "vsphere.insecure-session", "vsphere", "high", "vCenter reached without TLS verification",
        bad="the audit's (and provisioning's) session to vCenter did not verify its certificate "
            "(--insecure or vsphere.insecure: true)",
        good="vsphere.ca_bundle with the CA that signed vCenter's certificate",
        why="without verification anyone on the path can impersonate vCenter and read the password and the "
            "ignition sent through it (Python ssl CERT_NONE; VMware: replace or trust the VMCA certificate)",
        fix="set vsphere.ca_bundle to vCenter's CA (download it from https://<vcenter>/certs/download.zip) and drop "
            "--insecure",
        kind="security",
    ),
]
