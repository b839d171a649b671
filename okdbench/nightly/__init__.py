"""Nightly comparison runs: config, lock, run the suites per platform, report, retention, notify."""
