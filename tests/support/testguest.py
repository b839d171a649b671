"""Fixture `test_guest`: the okdbench test guest (Debian kernel + busybox initramfs), built once and cached in .cache/."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.kvm.testguest import TestGuest, TestGuestBuildError, build_test_guest

CACHE = Path(__file__).resolve().parents[2] / ".cache"


@pytest.fixture(scope="session")
def test_guest() -> TestGuest:
    """Kernel + initrd paths; the first build fetches two Debian packages with apt-get download (~10 s)."""
    try:
        return build_test_guest(CACHE)
    except TestGuestBuildError as exc:
        pytest.skip(str(exc))
