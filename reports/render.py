"""Report output: one self-contained HTML file (jinja2, autoescaped) or the summary as CSV/JSON."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import asdict, fields
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from reports.i18n import ENGLISH, language
from reports.model import RUNS_NEEDED_SHOWN, MetricRow, Report

TEMPLATES = Path(__file__).parent / "templates"

SUMMARY_COLUMNS = [f.name for f in fields(MetricRow)]


def _env(lang: str = "en") -> jinja2.Environment:
    tr = language(lang)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        extensions=["jinja2.ext.i18n"],
        # Every string from results (node names, labels, details) is untrusted text.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = tr.num
    env.filters["pct"] = tr.pct
    env.filters["ratio_pct"] = tr.ratio_pct
    env.filters["pval"] = tr.pval
    env.filters["level"] = tr.level
    env.filters["date"] = tr.date
    env.filters["datetime"] = tr.datetime
    env.filters["slug"] = slug
    env.filters["wrap_dots"] = wrap_dots
    env.globals["lang"] = tr.code
    env.globals["sep"] = tr.sep  # {{ label }}{{ sep(":") }}{{ text }}: French typography
    env.globals["runs_cap"] = RUNS_NEEDED_SHOWN
    env.install_gettext_translations(tr, newstyle=True)
    return env


# English formatting, for callers outside templates.
fmt_num = ENGLISH.num
fmt_pct = ENGLISH.pct
fmt_ratio_pct = ENGLISH.ratio_pct
fmt_p = ENGLISH.pval


def wrap_dots(text: str) -> Markup:
    """A dotted metric name that may wrap after its dots but never inside a word."""
    return Markup("<wbr>").join(escape(part) for part in re.split(r"(?<=[./_])", str(text)))


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in str(text)).strip("-").lower() or "x"


def render_html(report: Report) -> str:
    return _env(report.lang).get_template("report.html.j2").render(r=report)


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
