import pkgutil

import tests.support

# Each module under tests/support/ contributes fixtures for one real component.
pytest_plugins = [
    f"tests.support.{m.name}" for m in pkgutil.iter_modules(tests.support.__path__) if not m.name.startswith("_")
]
