"""Total cost of ownership over N years (3 by default) from figures the user provides.

okdbench has no built-in prices: licences, support and salaries differ per contract and
country, and a number we invented would end up in a slide. Unknown keys are errors, since a
misspelt `licence_per_core_per_yaer` silently costing zero is worse than stopping.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


from plumbing.errors import UserError
from plumbing.validation import read_yaml, short
from reports.i18n import N_  # line labels are msgids, translated where the report shows them
from reports.model import CostLine, CostTable

# key -> (line label, is it per year?)
PLATFORM_FIELDS: dict[str, str] = {
    "hosts": "number of hypervisor hosts",
    "cores_per_host": "physical cores per host",
    "licence_per_core_per_year": "hypervisor licence per core per year",
    "licence_per_host_per_year": "hypervisor licence per host per year",
    "support_per_year": "support contract per year (whole platform)",
    "hardware_per_host": "one-off hardware cost per host",
    "admin_fte": "administrator effort in full-time equivalents",
    "fte_cost_per_year": "cost of one full-time administrator per year",
    "other_per_year": "any other yearly cost (training, tooling)",
}
TOP_FIELDS = {"currency", "years", "platforms", "example", "note"}
# Upper bounds: beyond them a figure is a typo (or .inf), and the totals would be meaningless.
COUNT_BOUNDS = {"hosts": 100_000, "cores_per_host": 4_096, "admin_fte": 10_000}
MAX_AMOUNT = 1e12  # any money figure: a trillion in the report's currency


def parse_costs(data: Any, source: str = "costs") -> CostTable:
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping with currency, years and platforms (see examples/costs.yaml)")
    unknown = set(data) - TOP_FIELDS
    if unknown:
        raise UserError(f"{source}: unknown key {short(repr(sorted(map(str, unknown))[0]))}; allowed: {', '.join(sorted(TOP_FIELDS))}")
    currency = data.get("currency", "")
    if not isinstance(currency, str) or not currency:
        raise UserError(f"{source}: 'currency' is missing; e.g. currency: EUR")
    years = data.get("years", 3)
    if not isinstance(years, int) or isinstance(years, bool) or not 1 <= years <= 20:
        raise UserError(f"{source}: 'years' must be a whole number of years between 1 and 20 (default 3)")
    platforms = data.get("platforms")
    if not isinstance(platforms, dict) or not platforms:
        raise UserError(f"{source}: 'platforms' is missing; give one mapping per platform label, e.g. vsphere: {{hosts: 4}}")

    names = [str(p) for p in platforms]
    figures: dict[str, dict[str, float]] = {}
    for name, fields in platforms.items():
        where = f"{source}: platforms.{short(name, 40)}"
        if not isinstance(fields, dict):
            raise UserError(f"{where}: expected a mapping of cost figures ({', '.join(PLATFORM_FIELDS)})")
        bad = set(fields) - set(PLATFORM_FIELDS)
        if bad:
            raise UserError(f"{where}: unknown key {short(repr(sorted(map(str, bad))[0]))}; allowed: {', '.join(PLATFORM_FIELDS)}")
        vals: dict[str, float] = {}
        for key in PLATFORM_FIELDS:
            v = fields.get(key, 0)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise UserError(f"{where}.{key}: {short(repr(v))} is not a number ({PLATFORM_FIELDS[key]})")
            high = COUNT_BOUNDS.get(key, MAX_AMOUNT)
            # Compared before float(): a 400-digit integer would overflow float() itself.
            if not (isinstance(v, int) or math.isfinite(v)) or not 0 <= v <= high:
                raise UserError(f"{where}.{key}: {short(repr(v))} is out of range; use a number between 0 and {high:,.0f} "
                                f"({PLATFORM_FIELDS[key]})")
            vals[key] = float(v)
        figures[str(name)] = vals

    def line(label: str, fn) -> CostLine:
        return CostLine(item=label, amounts={p: fn(f) for p, f in figures.items()})

    lines = [
        line(N_("Licences per core"), lambda f: f["hosts"] * f["cores_per_host"] * f["licence_per_core_per_year"] * years),
        line(N_("Licences per host"), lambda f: f["hosts"] * f["licence_per_host_per_year"] * years),
        line(N_("Support"), lambda f: f["support_per_year"] * years),
        line(N_("Hardware (one-off)"), lambda f: f["hosts"] * f["hardware_per_host"]),
        line(N_("Administration"), lambda f: f["admin_fte"] * f["fte_cost_per_year"] * years),
        line(N_("Other"), lambda f: f["other_per_year"] * years),
    ]
    lines = [ln for ln in lines if any(v for v in ln.amounts.values())]
    totals = {p: sum(ln.amounts[p] for ln in lines) for p in names}
    note = str(data.get("note", "") or "")
    if data.get("example"):
        note = ("EXAMPLE FIGURES, not real prices: replace them with your own quotes. " + note).strip()
    return CostTable(currency=currency, years=years, platforms=names, lines=lines, totals=totals, note=note)


def load_costs(path: Path | str) -> CostTable:
    path = Path(path)
    data = read_yaml(path, "--costs", "a costs YAML (see examples/costs.yaml)")
    return parse_costs(data, f"--costs {path}")
