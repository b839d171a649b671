"""The report's language: one gettext catalogue per language, English (the msgids) the default.

Templates mark every visible sentence with `{{ _("…") }}` or `{% trans %}…{% endtrans %}`
(jinja2's i18n extension, new-style: `_("%(n)s runs", n=3)`); Python code that builds a sentence
for the report takes a `gettext` callable from `translations(lang)`.
"""

from __future__ import annotations

import gettext

LANGUAGES = ("en",)


def translations(lang: str = "en") -> gettext.NullTranslations:
    """The catalogue for `lang` (English needs none: its msgids are the text)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown report language {lang!r} (one of {', '.join(LANGUAGES)})")
    return gettext.NullTranslations()
