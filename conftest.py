# The okdbench pytest plugin (options, run folder, `record`, `criterion`, `--repeat`) for `pytest suites/`.
pytest_plugins = ["okdbench.plugin"]
