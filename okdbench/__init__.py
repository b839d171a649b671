"""okdbench: is OKD on KVM as good as on vSphere? Measured, with evidence."""

__version__ = "0.1.0"
