"""The report in a real browser (Debian's headless Chromium): demo-sized and a year of nights (1 M samples).

At 1280 px the page must not scroll sideways (wide tables scroll inside their own box), the page
must log no console error, and printing it to PDF must paginate (managers print it).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from okdbench.cli import main
from reports.synthetic import write_demo_like

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic", "--enable-logging=stderr", "--v=0"]
# Appended to a copy of the page: records the layout width and any script error for --dump-dom.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
document.documentElement.setAttribute('data-probe',
  document.documentElement.scrollWidth + ' ' + document.documentElement.clientWidth + ' ' + window.__errors.length);
</script>"""

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() or not shutil.which("pdfinfo"),
                                reason="Debian chromium and poppler-utils (pdfinfo) are needed")


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"  # a new profile per call
    p = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


def console_errors(stderr: str, page: Path) -> list[str]:
    return [ln for ln in stderr.splitlines()
            if "CONSOLE" in ln or "net::ERR" in ln or "Uncaught" in ln or (page.name in ln and "ERROR" in ln)]


def check_in_browser(html: Path, tmp: Path) -> int:
    """No sideways scrolling at 1280 px, no console error, a PDF print; returns the PDF's page count."""
    probe = tmp / "probe.html"
    probe.write_text(html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    p = chromium(tmp, "--window-size=1280,900", "--dump-dom", probe.as_uri())
    m = re.search(r'data-probe="(\d+) (\d+) (\d+)"', p.stdout)
    assert m, "the probe did not run"
    scroll_width, client_width, errors = map(int, m.groups())
    assert client_width <= 1280 and scroll_width <= client_width, (scroll_width, client_width)
    assert errors == 0
    assert console_errors(p.stderr, probe) == []
    pdf = tmp / "print.pdf"
    p = chromium(tmp, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", html.as_uri())
    assert console_errors(p.stderr, html) == []
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def test_demo_sized_report_in_chromium(tmp_path):
    results = tmp_path / "results"
    write_demo_like(results, np.random.default_rng(2))
    out = tmp_path / "demo-report.html"
    assert main(["report", str(results), "--baseline", "kvm-default", "--candidate", "kvm-tuned", "--lang", "fr",
                 "--out", str(out)]) == 0
    assert check_in_browser(out, tmp_path) >= 1


@pytest.fixture(scope="session")
def year_of_nights() -> Path:
    """The benchmark's own 1 M-sample folder (benchmarks/report_scale.py), generated once (~3 s) and cached."""
    spec = importlib.util.spec_from_file_location("report_scale", ROOT / "benchmarks" / "report_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dataset(1.0)


def test_year_of_nights_report_in_chromium(year_of_nights, tmp_path):
    out = tmp_path / "year.html"
    assert main(["report", str(year_of_nights), "--costs", str(ROOT / "examples" / "costs.yaml"), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert html.count('<svg class="chart"') == 61  # 60 metrics and the build stages
    assert check_in_browser(out, tmp_path) > 10  # a year of runs prints on many pages
