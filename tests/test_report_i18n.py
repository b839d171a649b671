"""The report in French: one catalogue that matches the sources, and no English left on the page."""

from __future__ import annotations

import html
import json
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
from reports import security
from reports.i18n import LANGUAGES, LOCALE_DIR, language
from reports.synthetic import MetricTruth, PlatformTruth, write_demo_like, write_platform
from results.timeline import Timeline, write_timeline

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


# Placeholders, markup and command-line flags (--runs, --exclude-contended) are the same in both languages.
NOT_WORDS = re.compile(r"%\(\w+\)s|<[^>]+>|--[\w-]+")


def english_only_words() -> set[str]:
    cat = catalogue("fr")
    eng, fra = set(), set()
    for m in cat:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strs = m.string if isinstance(m.string, tuple) else (m.string,)
        for s in ids:
            eng |= words(NOT_WORDS.sub(" ", s))
        for s in strs:
            fra |= words(NOT_WORDS.sub(" ", s))
    return eng - fra - IDENTIFIERS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """25 nights a side (trends), a step (a change point), criteria, an emulated host, a bad sample,
    run conditions (every kvm run contended), resilience measures with a timeline, a security audit."""
    results = tmp_path_factory.mktemp("results-fr")
    rng = np.random.default_rng(17)
    metrics = [
        MetricTruth("build.duration", 100.0, samples=3),
        MetricTruth("build.stage.Build", 60.0, samples=3),
        MetricTruth("net.throughput", 900.0, unit="MB/s", better="higher", suite="network", samples=3),
        MetricTruth("guest.disk.fdatasync.iops", 800.0, unit="iops", better="higher", suite="storage",
                    run_sd=0.6, samples=3),
    ]
    sections = [
        MetricTruth("resilience.power-off.unavailable_s", 40.0, suite="resilience", samples=1),
        MetricTruth("resilience.power-off.recover_s", 330.0, suite="resilience", samples=1),
        MetricTruth("resilience.migrate.errors", 1.0, "count", suite="resilience", samples=1, run_sd=0.0, sample_sd=0.0),
    ]

    def conditions(wait: float) -> list[MetricTruth]:
        return [MetricTruth("context.hv.cpu.wait", wait, "ratio", suite="context", samples=2),
                MetricTruth("context.guest.memory.swap", 0.0, "pages/s", suite="context", samples=2, run_sd=0.0, sample_sd=0.0)]

    dirs = write_platform(results, PlatformTruth("vsphere", metrics + sections + conditions(0.004), runs=25,
                                                 criteria={"install": "passed", "upgrade": "passed"},
                                                 hypervisor={"esxi": "8.0.2"}), rng)
    dirs += write_platform(results, PlatformTruth("kvm", [MetricTruth(**{**m.__dict__, "level": m.level * 1.2}) for m in metrics]
                                                  + sections + conditions(0.09),
                                                  runs=25, criteria={"install": "passed", "upgrade": "failed"},
                                                  hypervisor={"libvirt": "9.0.0", "emulated": True}),
                           rng, first_night=datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc), step={"build.duration": (15, 1.3)})
    for d in dirs:
        write_timeline(d, "power-off-worker", Timeline(
            disruption="power-off", node="worker-0", vm="okd-worker-0", t0=1e9,
            probes=[(t / 10, 4.0, not 0 <= t / 10 < 40) for t in range(-20, 500, 5)],
            transitions=[(40.2, "node", "worker-0", "NotReady"), (41.0, "pod", "app-x", "NotReady"),
                         (400.0, "node", "worker-0", "Ready")]))
        info = json.loads((d / "run.json").read_text())
        info["security"] = security_record(info["platform"])
        (d / "run.json").write_text(json.dumps(info))
    return results


def security_record(platform: str) -> dict:
    """run.json `security` as the security-audit criterion writes it (one failing rule)."""
    from provision.audit.report import security_posture as posture_record
    from provision.audit.rules import Finding

    vms = [f"okd-{platform}-master-0", f"okd-{platform}-worker-0"]
    rule = "kvm.svirt" if platform == "kvm" else "vsphere.copy-paste"
    return posture_record([Finding(rule, vms[1], "observed")], vms, platform)


@pytest.fixture(scope="module")
def french(corpus, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("fr") / "rapport.html"
    assert main(["report", str(corpus), "--lang", "fr", "--costs", str(ROOT / "examples" / "costs.yaml"),
                 "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def english_left(page: str, recorded: tuple[str, ...] = ()) -> list[str]:
    """Words of the page's visible text that only the English side of the catalogue uses."""
    parser = _Text()
    parser.feed(page.replace("<wbr>", ""))  # metric names may wrap at their dots
    # The costs file's own note is the user's text, shown as written.
    text = " ".join(parser.parts).replace("Placeholder figures for illustration.", "")
    for detail in recorded:  # recorded by the runs, shown as recorded
        text = text.replace(detail, " ")
    # Identifiers shown as typed: metric names (dotted), run ids, units, file names, hypervisor facts, flags.
    text = NOT_WORDS.sub(" ", re.sub(r"\S*[._/:=]\S*", " ", text))
    english = english_only_words()
    assert {"runs", "the", "metric", "worse", "threshold", "samples"} <= english  # the check can see English
    return sorted((words(text) - DETAILS) & english)


def test_french_report_has_no_english_left(french, corpus):
    assert '<html lang="fr">' in french
    # the sections other helpers added are on the page, in French
    for section in ('id="conditions"', 'id="resilience"', 'id="security"'):
        assert section in french
    text = html.unescape(french)
    assert "ont subi de la contention" in text and "Mise hors tension d'un nœud worker" in text
    assert "VM non confinée par sVirt" in text and "steal" in text
    assert english_left(french) == []


def test_french_demo_note_has_no_english_left(tmp_path):
    write_demo_like(tmp_path / "results", np.random.default_rng(5))
    out = tmp_path / "demo.html"
    assert main(["report", str(tmp_path / "results"), "--lang", "fr", "--baseline", "kvm-default",
                 "--candidate", "kvm-tuned", "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "Ce que montre cette démo" in html
    # a criterion's skip reason is recorded by the run (suites/), in English
    assert english_left(html, recorded=("no OKD cluster (pass --kubeconfig or an OKD --spec)",)) == []


def test_every_security_rule_title_is_translated():
    """reports/security.py lists the titles the audit records; a new rule must be added there (and translated)."""
    from provision.audit.rules import RULES

    titles = {r.title for r in RULES.values() if r.kind == "security"}
    assert titles - security.RULE_TITLES == set()
    fr = language("fr")
    assert all(fr.gettext(t) != t for t in titles)


def test_french_report_formats_numbers_and_says_the_verdicts_in_french(french):
    assert re.search(r"\d,\d\u00a0%", french)
    assert not re.search(r"\d\.\d\s?%", french)
    assert "Synthèse" in french and "Matrice de validation" in french and "Coût sur 3 ans" in french and "Décision" in french
    assert any(v in french for v in ("moins bon", "meilleur", "variance trop forte", "pas de différence significative"))
    assert "Suivi" not in french  # the nightly title is only for nightlies


def test_french_report_puts_a_no_break_space_before_colons_and_semicolons(french):
    parser = _Text()
    parser.feed(french.replace("<wbr>", ""))
    # the criteria's recorded details ("install: passed") are shown as recorded
    text = re.sub(r"\S+: (passed|failed)\b", " ", " ".join(parser.parts))
    assert re.findall(r".{0,30}(?<![\u00a0\d])[:;](?=\s)", text) == []  # "4:1", "17:25" are not punctuation


def test_nightly_config_chooses_the_report_language():
    from okdbench.nightly.config import ConfigError, parse_config

    platforms = [{"label": "vsphere", "platform": "vsphere", "kubeconfig": "kc"},
                 {"label": "kvm", "platform": "kvm", "kubeconfig": "kc"}]
    assert parse_config({"platforms": platforms}).lang == "en"
    assert parse_config({"platforms": platforms, "lang": "fr"}).lang == "fr"
    with pytest.raises(ConfigError) as err:
        parse_config({"platforms": platforms, "lang": "de"})
    assert "lang" in str(err.value) and "\n" not in str(err.value)
