import os
import pkgutil

import pytest

import tests.support

# Each module under tests/support/ contributes fixtures for one real component.
pytest_plugins = [
    f"tests.support.{m.name}" for m in pkgutil.iter_modules(tests.support.__path__) if not m.name.startswith("_")
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # CI installs and starts every real component (libvirtd, QEMU, the vSphere simulator, Chromium):
    # there a skip means a broken setup, and a green run that skipped it would prove nothing.
    report = yield
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI ({reason}); CI installs every component, so this is a setup failure"
    return report
