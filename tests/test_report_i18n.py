"""The report in French: one catalogue that matches the sources, and no English left on the page."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from okdbench.cli import main
from reports.i18n import LANGUAGES, LOCALE_DIR, language
from reports.synthetic import MetricTruth, PlatformTruth, write_platform

ROOT = Path(__file__).resolve().parent.parent


def extracted_msgids() -> set:
    """What `pybabel extract -F babel.cfg` finds: every marked sentence of templates and reports/*.py."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    ids = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=DEFAULT_KEYWORDS
    ):
        ids.add(message if isinstance(message, str) else tuple(m for m in message if m is not None))
    return ids


def catalogue(lang: str):
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=lang)


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_catalogue_matches_the_sources_and_is_complete(lang):
    cat = catalogue(lang)
    in_po = {m.id for m in cat if m.id}
    found = extracted_msgids()
    assert len(found) > 100
    assert sorted(map(str, found - in_po)) == [], "new sentences to translate: pybabel update (see reports/i18n.py)"
    assert sorted(map(str, in_po - found)) == [], "obsolete entries: remove them from the .po"
    untranslated = [m.id for m in cat if m.id and (m.fuzzy or not all(m.string if isinstance(m.string, tuple) else [m.string]))]
    assert untranslated == []
    # Placeholders agree between msgid and translation (babel's python-format checker).
    problems = [(m.id, [str(e) for e in errs]) for m, errs in cat.check()]
    assert problems == []


def test_shipped_translations_are_what_the_po_says():
    fr = language("fr")
    for m in catalogue("fr"):
        if m.id and not isinstance(m.id, tuple):
            assert fr.gettext(m.id) == m.string
    assert fr.ngettext("%(num)s run", "%(num)s runs", 1) % {"num": 1} == "1 exécution"
    assert fr.ngettext("%(num)s run", "%(num)s runs", 5) % {"num": 5} == "5 exécutions"


def test_french_numbers_and_dates():
    fr, en = language("fr"), language("en")
    assert fr.pct(0.125) == "12,5\u00a0%"
    assert en.pct(0.125) == "12.5\u00a0%"
    assert fr.ratio_pct(0.283) == "−71,7\u00a0%"
    assert fr.num(12345.6) == "12\u202f346"
    assert fr.num(1234567) == "1\u202f234\u202f567"
    assert fr.pval(0.1323) == "0,132"
    assert fr.date("2024-03-01") == "1 mars 2024"
    assert fr.datetime("2026-12-03 17:25 UTC") == "3 décembre 2026 17:25 UTC"
    assert fr.level(0.95) == "95\u00a0%" and fr.level(0.99166) == "99,2\u00a0%"


# Shown as recorded or as named by the user, in either language.
IDENTIFIERS = {
    "okd", "okdbench", "kvm", "vsphere", "welch", "holm", "fisher", "mann", "whitney", "hodges", "lehmann",
    "binseg", "ruptures", "qemu", "tcg", "cpu", "vcpu", "gib", "eur", "utc", "costs", "insecure", "tls",
}
DETAILS = {"install", "upgrade", "registry", "passed", "failed"}  # criterion names and recorded details


class _Text(HTMLParser):
    """Visible text: element text plus alt/title attributes, minus <style>/<script>."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self._skip += 1
        for k, v in attrs:
            if k in ("alt", "title") and v:
                self.parts.append(v)

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-zÀ-ÿœŒ']+", text) if len(w) >= 3}


def english_only_words() -> set[str]:
    cat = catalogue("fr")
    eng, fra = set(), set()
    for m in cat:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strs = m.string if isinstance(m.string, tuple) else (m.string,)
        for s in ids:
            eng |= words(re.sub(r"%\(\w+\)s|<[^>]+>", " ", s))
        for s in strs:
            fra |= words(re.sub(r"%\(\w+\)s|<[^>]+>", " ", s))
    return eng - fra - IDENTIFIERS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """25 nights a side (trends), a step (a change point), criteria, an emulated host, a bad sample."""
    results = tmp_path_factory.mktemp("results-fr")
    rng = np.random.default_rng(17)
    metrics = [
        MetricTruth("build.duration", 100.0, samples=3),
        MetricTruth("build.stage.Build", 60.0, samples=3),
        MetricTruth("net.throughput", 900.0, unit="MB/s", better="higher", suite="network", samples=3),
        MetricTruth("guest.disk.fdatasync.iops", 800.0, unit="iops", better="higher", suite="storage",
                    run_sd=0.6, samples=3),
    ]
    write_platform(results, PlatformTruth("vsphere", metrics, runs=25, criteria={"install": "passed", "upgrade": "passed"},
                                          hypervisor={"esxi": "8.0.2"}), rng)
    write_platform(results, PlatformTruth("kvm", [MetricTruth(**{**m.__dict__, "level": m.level * 1.2}) for m in metrics],
                                          runs=25, criteria={"install": "passed", "upgrade": "failed"},
                                          hypervisor={"libvirt": "9.0.0", "emulated": True}),
                   rng, first_night=datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc), step={"build.duration": (15, 1.3)})
    return results


@pytest.fixture(scope="module")
def french(corpus, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("fr") / "rapport.html"
    assert main(["report", str(corpus), "--lang", "fr", "--costs", str(ROOT / "examples" / "costs.yaml"),
                 "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def test_french_report_has_no_english_left(french, corpus):
    assert '<html lang="fr">' in french
    parser = _Text()
    parser.feed(french.replace("<wbr>", ""))  # metric names may wrap at their dots
    # The costs file's own note is the user's text, shown as written.
    text = " ".join(parser.parts).replace("Placeholder figures for illustration.", "")
    # Identifiers shown as typed: metric names (dotted), run ids, units, file names, hypervisor facts.
    text = re.sub(r"\S*[._/:=]\S*", " ", text)
    english = english_only_words()
    assert {"runs", "the", "metric", "worse", "threshold", "samples"} <= english  # the check can see English
    left = sorted((words(text) - DETAILS) & english)
    assert left == []


def test_french_report_formats_numbers_and_says_the_verdicts_in_french(french):
    assert re.search(r"\d,\d\u00a0%", french)
    assert not re.search(r"\d\.\d\s?%", french)
    assert "Synthèse" in french and "Matrice de validation" in french and "Coût sur 3 ans" in french and "Décision" in french
    assert any(v in french for v in ("moins bon", "meilleur", "variance trop forte", "pas de différence significative"))
    assert "Suivi" not in french  # the nightly title is only for nightlies


def test_nightly_config_chooses_the_report_language():
    from okdbench.nightly.config import ConfigError, parse_config

    platforms = [{"label": "vsphere", "platform": "vsphere", "kubeconfig": "kc"},
                 {"label": "kvm", "platform": "kvm", "kubeconfig": "kc"}]
    assert parse_config({"platforms": platforms}).lang == "en"
    assert parse_config({"platforms": platforms, "lang": "fr"}).lang == "fr"
    with pytest.raises(ConfigError) as err:
        parse_config({"platforms": platforms, "lang": "de"})
    assert "lang" in str(err.value) and "\n" not in str(err.value)
