"""One jinja2 environment for every provision template: strict, deterministic, no HTML escaping."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import escape as _xml_escape

TEMPLATES = Path(__file__).parent / "templates"


def _json_string(value: Any) -> str:
    # YAML is a superset of JSON: a JSON string literal is a safe YAML scalar for any content.
    return json.dumps(str(value))


def _xml(value: Any) -> str:
    return str(_xml_escape(str(value)))


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["json_string"] = _json_string
    env.filters["xml"] = _xml
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
