"""Stand up, attach to and tear down OKD clusters on KVM (libvirt) and vSphere (pyvmomi)."""
