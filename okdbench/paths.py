"""Where things are: the checkout root (suites/, results/, .cache/). Cheap to import."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITES_DIR = ROOT / "suites"
CACHE_DIR = ROOT / ".cache"
