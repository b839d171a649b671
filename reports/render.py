"""Report output: one self-contained HTML file (jinja2, autoescaped) or the summary as CSV/JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, fields
from pathlib import Path

import jinja2

from reports.i18n import translations
from reports.model import MetricRow, Report

TEMPLATES = Path(__file__).parent / "templates"

SUMMARY_COLUMNS = [f.name for f in fields(MetricRow)]


def _env(lang: str = "en") -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        extensions=["jinja2.ext.i18n"],
        # Every string from results (node names, labels, details) is untrusted text.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    env.filters["pct"] = fmt_pct
    env.filters["ratio_pct"] = fmt_ratio_pct
    env.filters["pval"] = fmt_p
    env.filters["slug"] = slug
    env.install_gettext_translations(translations(lang), newstyle=True)
    return env


def fmt_num(v: float | int | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:,.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"


def fmt_pct(v: float | None) -> str:
    """A fraction (0.123) as a percentage."""
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v * 100:.1f} %"


def fmt_ratio_pct(r: float | None) -> str:
    """A ratio (1.123) as a signed change (+12.3 %)."""
    if r is None or not math.isfinite(r):
        return "–"
    return f"{(r - 1) * 100:+.1f} %"


def fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in str(text)).strip("-").lower() or "x"


def render_html(report: Report) -> str:
    return _env().get_template("report.html.j2").render(r=report)


def summary_records(report: Report) -> list[dict]:
    return [asdict(row) for row in report.summary]


def summary_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    w.writeheader()
    for rec in summary_records(report):
        w.writerow({k: ("" if v is None else v) for k, v in rec.items()})
    return buf.getvalue()


def summary_json(report: Report) -> str:
    doc = {
        "title": report.title,
        "generated": report.generated,
        "baseline": report.baseline,
        "candidate": report.candidate,
        "metrics": summary_records(report),
        "warnings": report.warnings,
    }
    if report.conditions is not None:  # reports/conditions.py
        doc["contended_runs"] = [asdict(c) for c in report.conditions.contended]
        doc["verdicts_excluding_contended"] = report.conditions.excluded
    return json.dumps(doc, indent=2, allow_nan=False, default=_json_default) + "\n"


def _json_default(o):
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_output(report: Report, out: Path, fmt: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        text = render_html(report)
    elif fmt == "csv":
        text = summary_csv(report)
    else:
        text = summary_json(_finite(report))
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


def _finite(report: Report) -> Report:
    # JSON has no NaN/Infinity: non-finite figures become null.
    for row in report.summary:
        for f in fields(row):
            v = getattr(row, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                setattr(row, f.name, None)
    return report
