"""The report's language: one gettext catalogue per language plus the numbers and dates its readers expect.

English is the default and needs no catalogue (its msgids are the text). Other languages live in
`reports/locale/<lang>/LC_MESSAGES/messages.po`, compiled in memory when first used (the .po is
what is shipped and reviewed; no .mo to keep in step).

How a section plugs in (templates and reports/*.py alike):
- templates: `{{ _("Text %(x)s", x=v) }}`, `{{ ngettext("%(num)s run", "%(num)s runs", n) }}` or
  `{% trans %}…{% endtrans %}`; numbers through the `num`/`pct`/`ratio_pct`/`pval` filters;
- Python that writes a sentence for the report takes a `Language` (`language(lang)`) and calls
  `tr.gettext("…") % {...}` / `tr.ngettext(…)` and `tr.num(…)`, `tr.pct(…)`;
- a word stored as data and translated where shown (verdicts, statuses) is marked with `N_("…")`;
- then `pybabel extract -F babel.cfg -o /tmp/messages.pot . && pybabel update -i
  /tmp/messages.pot -d reports/locale` and translate the new entries in each messages.po
  (tests/test_report_i18n.py fails while one is missing).
"""

from __future__ import annotations

import gettext
import io
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "fr")
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Mark a msgid for extraction without translating it here (it is translated where shown)."""
    return message


# Words stored as data (model.VERDICTS, criterion statuses) and translated where shown.
VERDICT_WORDS = (
    N_("better"), N_("worse"), N_("no significant difference"), N_("variance too high"), N_("not enough samples"),
)
STATUS_WORDS = (N_("passed"), N_("failed"), N_("skipped"), N_("error"), N_("not checked"),
                N_("complete"), N_("incomplete"), N_("aborted"), N_("running"))
BETTER_WORDS = (N_("lower is better"), N_("higher is better"))


def check_language(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown report language {lang!r} (one of {', '.join(LANGUAGES)})")
    return lang


@lru_cache(maxsize=None)
def translations(lang: str = "en") -> gettext.NullTranslations:
    """The catalogue for `lang`, compiled from its .po (English needs none: its msgids are the text)."""
    check_language(lang)
    if lang == "en":
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)  # a fuzzy (unchecked) translation falls back to English
    buf.seek(0)
    return gettext.GNUTranslations(buf)


@dataclass(frozen=True)
class Language:
    """Translations plus number/date formatting for one report language (babel's CLDR data)."""

    code: str = "en"
    _t: gettext.NullTranslations = field(default_factory=gettext.NullTranslations, repr=False, compare=False)

    def gettext(self, message: str) -> str:
        return self._t.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._t.ngettext(singular, plural, n)

    # Numbers. English keeps the house style ("12.5 %", a space before the sign, as the
    # managers' French habit and ISO 31-0 write it); French gets CLDR's separators: "12,5 %"
    # with a no-break space and a narrow no-break space between thousands.
    def num(self, v: float | int | None, digits: int = 4) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "–"
        if isinstance(v, int):
            return self._decimal(v, "#,##0")
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            mantissa, exp = f"{v:.{digits - 1}e}".split("e")
            return f"{self._decimal(float(mantissa), '0.' + '0' * (digits - 1))}e{int(exp):+03d}"
        if abs(v) >= 1e4:
            return self._decimal(round(v), "#,##0")
        # `digits` significant digits, trailing zeros dropped (as Python's "g")
        decimals = max(0, digits - 1 - (math.floor(math.log10(abs(v))) if v else 0))
        return self._decimal(round(v, decimals), "#,##0." + "#" * decimals if decimals else "#,##0")

    def pct(self, fraction: float | None, signed: bool = False, decimals: int = 1) -> str:
        """A fraction (0.123) as a percentage ("12.3 %"); signed: "+12.3 %"."""
        if fraction is None or not math.isfinite(fraction):
            return "–"
        body = "#,##0" + ("." + "0" * decimals if decimals else "")
        text = self._decimal(abs(fraction) * 100 if signed else fraction * 100, body)
        if signed:
            text = ("+" if fraction >= 0 else "−") + text
        return text + "\u00a0%"

    def level(self, confidence: float | None) -> str:
        """A confidence level: "95 %", "99.2 %" (one decimal only when it is not whole)."""
        if confidence is None:
            return "–"
        return self.pct(confidence, decimals=0 if round(confidence * 100, 1).is_integer() else 1)

    def ratio_pct(self, ratio: float | None, signed: bool = True) -> str:
        """A ratio (1.123) as a change ("+12.3 %", or "12.3 %" unsigned)."""
        if ratio is None or not math.isfinite(ratio):
            return "–"
        return self.pct(ratio - 1.0 if signed else abs(ratio - 1.0), signed=signed)

    def pval(self, p: float | None) -> str:
        if p is None or not math.isfinite(p):
            return "–"
        return "< " + self._decimal(0.001, "0.000") if p < 0.001 else self._decimal(p, "0.000")

    def date(self, value: str | date | None) -> str:
        """An ISO date as the reader writes it ("2024-03-01" in English, "1 mars 2024" in French)."""
        if not value:
            return ""
        if self.code == "en":
            return str(value)
        from babel.dates import format_date

        try:
            d = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
        except ValueError:
            return str(value)
        return format_date(d, "d MMM y", locale=self.code)

    def datetime(self, value: str) -> str:
        """"2026-12-03 17:25 UTC" (how Report.generated is written) in the reader's words."""
        if self.code == "en":
            return value
        from babel.dates import format_datetime

        try:
            dt = datetime.strptime(value, "%Y-%m-%d %H:%M UTC")
        except ValueError:
            return value
        return format_datetime(dt, "d MMMM y HH:mm", locale=self.code) + " UTC"

    def sep(self, mark: str) -> str:
        """":" or ";" and the space after it, in the reader's typography (French puts a no-break space before)."""
        return ("\u00a0" if self.code == "fr" else "") + mark + " "

    def join(self, items: list[str]) -> str:
        """"a, b and c" in the reader's words ("a, b et c")."""
        items = list(items)
        if self.code == "en" or len(items) < 2:
            return " and ".join(items) if len(items) < 3 else ", ".join(items[:-1]) + " and " + items[-1]
        from babel.lists import format_list

        return format_list(items, locale=self.code)

    def _decimal(self, v: float | int, pattern: str) -> str:
        if self.code == "en":
            # Python's own formatting is the English house style and skips babel's import.
            decimals = len(pattern.split(".")[1]) if "." in pattern else 0
            optional = "." in pattern and pattern.split(".")[1].startswith("#")
            text = f"{v:,.{decimals}f}" if "," in pattern else f"{v:.{decimals}f}"
            if optional and "." in text:
                text = text.rstrip("0").rstrip(".")
            return text
        from babel.numbers import format_decimal

        return format_decimal(v, format=pattern, locale=self.code, decimal_quantization=True)


@lru_cache(maxsize=None)
def language(lang: str = "en") -> Language:
    return Language(check_language(lang), translations(lang))


ENGLISH = Language()
