"""Read a kubeconfig within bounds and check its shape: one line naming the file and the key, or the dict.

The kubernetes client indexes a kubeconfig without checking types (a context that is a list, a
cluster that is an int end in AttributeError deep inside it, and in a pytest session in an
INTERNALERROR), so everything okdbench hands it has been through here first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plumbing.errors import UserError
from plumbing.safe_load import read_yaml_file

def _a(value: Any) -> str:
    name = type(value).__name__
    return ("an " if name[0] in "aeiou" else "a ") + name


WHAT = "the kubeconfig of the cluster to test"
_ENTRIES = {"clusters": "cluster", "contexts": "context", "users": "user"}


class KubeconfigError(UserError):
    """A kubeconfig cannot be used. str() is one line naming the file and the key."""


def read_kubeconfig(path: Path | str, flag: str = "--kubeconfig") -> dict[str, Any]:
    """The kubeconfig as a dict whose clusters/contexts/users and current context have the right shapes."""
    data = read_yaml_file(path, flag, WHAT, KubeconfigError)
    check_kubeconfig(data, f"{flag} {path}")
    return data


def check_kubeconfig(data: Any, where: str) -> None:
    def bad(key: str, problem: str) -> KubeconfigError:
        return KubeconfigError(f"{where}: {key} {problem}; fix the kubeconfig (e.g. regenerate it with `oc login`)")

    if not isinstance(data, dict):
        raise bad("(top level)", "is not a mapping")
    named: dict[str, dict[str, Any]] = {}
    for section, inner in _ENTRIES.items():
        entries = data.get(section)
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise bad(section, f"is {_a(entries)}, not a list")
        named[section] = {}
        for i, entry in enumerate(entries):
            key = f"{section}[{i}]"
            if not isinstance(entry, dict):
                raise bad(key, f"is {_a(entry)}, not a mapping with name and {inner}")
            if not isinstance(entry.get("name"), str) or not entry["name"]:
                raise bad(f"{key}.name", "is missing or not a string")
            body = entry.get(inner)
            if not isinstance(body, dict):
                raise bad(f"{key}.{inner}", f"is {'missing' if body is None else _a(body)}, not a mapping")
            for field, value in body.items():
                if isinstance(value, (dict, list)) and field not in ("exec", "auth-provider", "extensions", "args", "env", "config"):
                    raise bad(f"{key}.{inner}.{field}", f"is {_a(value)}, not a value")
            named[section][entry["name"]] = body
    current = data.get("current-context")
    if current is None or current == "":
        raise bad("current-context", "is not set")
    if not isinstance(current, str):
        raise bad("current-context", f"is {_a(current)}, not a context name")
    context = named["contexts"].get(current)
    if context is None:
        raise bad("current-context", f"names {current[:60]!r}, which is not in contexts")
    for ref, section in (("cluster", "clusters"), ("user", "users")):
        value = context.get(ref)
        if value is None and ref == "user":
            continue
        if not isinstance(value, str) or value not in named[section]:
            raise bad(f"context {current[:60]!r}.{ref}", f"does not name an entry of {section}")
    cluster = named["clusters"][context["cluster"]]
    if not isinstance(cluster.get("server"), str) or not cluster["server"]:
        raise bad(f"cluster {context['cluster'][:60]!r}.server", "is missing or not a URL")
