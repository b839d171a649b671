"""Objects by resource, a global resourceVersion, and an event log that watches replay from.

Semantics follow the API server where the suites can tell the difference: resourceVersion
increases with every write, list carries the current one, a watch from a version older than
the oldest retained event is answered with a 410 ERROR event, and a namespace deletion takes
its objects with it.
"""

from __future__ import annotations

import copy
import random
import string
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from tests.fakekube.resources import Registry, Resource


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}


def now_rfc3339() -> str:
    # Like metav1.Time: whole seconds, UTC.
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic merge: the suites patch maps only)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(doc: Any, ops: list[dict]) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        if op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif op["op"] == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last, None)
        else:
            raise ApiError(422, "Invalid", f"json patch op {op['op']!r} is not supported by the fake")
    return doc


def _label_match(labels: dict, selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: dict, path: str) -> str:
    cur: Any = obj
    for p in path.split("."):
        cur = cur.get(p) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def _field_match(obj: dict, selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if _field(obj, k) == v:
                return False
        else:
            k, v = term.replace("==", "=").split("=", 1)
            if _field(obj, k) != v:
                return False
    return True


def matches(obj: dict, namespace: str | None, label_selector: str = "", field_selector: str = "") -> bool:
    md = obj.get("metadata", {})
    if namespace and md.get("namespace") != namespace:
        return False
    if label_selector and not _label_match(md.get("labels") or {}, label_selector):
        return False
    if field_selector and not _field_match(obj, field_selector):
        return False
    return True


@dataclass
class Event:
    rv: int
    resource: Resource
    type: str  # ADDED | MODIFIED | DELETED
    obj: dict


Hook = Callable[[str, Resource, dict], None]


class Store:
    MAX_EVENTS = 20000

    def __init__(self, registry: Registry):
        self.registry = registry
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.rv = 1000
        self.compacted_rv = 0
        self.events: list[Event] = []
        self.cut_epoch = 0
        self.hooks: list[Hook] = []  # controllers: called after each write, outside no lock guarantees
        self._rand = random.Random(7)

    # ------------------------------------------------------------ helpers

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _emit(self, res: Resource, type_: str, obj: dict) -> None:
        self.events.append(Event(self.rv, res, type_, copy.deepcopy(obj)))
        if len(self.events) > self.MAX_EVENTS:
            drop = len(self.events) - self.MAX_EVENTS
            self.compacted_rv = self.events[drop].rv
            del self.events[:drop]
        self.changed.notify_all()

    def _fire(self, type_: str, res: Resource, obj: dict) -> None:
        for hook in list(self.hooks):
            hook(type_, res, copy.deepcopy(obj))

    def random_suffix(self, n: int = 5) -> str:
        with self.lock:
            return "".join(self._rand.choice(string.ascii_lowercase + string.digits) for _ in range(n))

    @staticmethod
    def _key(res: Resource, ns: str | None, name: str) -> tuple[str, str, str]:
        return (res.key, ns or "", name)

    # ------------------------------------------------------------ reads

    def get(self, res: Resource, ns: str | None, name: str) -> dict:
        with self.lock:
            obj = self.objects.get(self._key(res, ns, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{res.plural}.{res.group or "core"} "{name}" not found')
            return copy.deepcopy(obj)

    def list(self, res: Resource, ns: str | None, label_selector: str = "", field_selector: str = "") -> tuple[list[dict], int]:
        with self.lock:
            items = [copy.deepcopy(o) for (k, _, _), o in sorted(self.objects.items())
                     if k == res.key and matches(o, ns, label_selector, field_selector)]
            return items, self.rv

    # ------------------------------------------------------------ writes

    def create(self, res: Resource, ns: str | None, obj: dict, *, check_namespace: bool = True) -> dict:
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        md = obj.setdefault("metadata", {})
        with self.lock:
            if res.namespaced:
                ns = ns or md.get("namespace")
                if not ns:
                    raise ApiError(400, "BadRequest", f"{res.kind} needs a namespace")
                md["namespace"] = ns
                if check_namespace and self._key(self.registry.by_plural("namespaces"), None, ns) not in self.objects:
                    raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
            else:
                md.pop("namespace", None)
            if not md.get("name"):
                if not md.get("generateName"):
                    raise ApiError(422, "Invalid", f"{res.kind}: metadata.name or generateName is required")
                md["name"] = md["generateName"] + self.random_suffix()
            key = self._key(res, md.get("namespace"), md["name"])
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", f'{res.plural}.{res.group or "core"} "{md["name"]}" already exists')
            md.setdefault("uid", str(uuid.uuid4()))
            md.setdefault("creationTimestamp", now_rfc3339())
            md["resourceVersion"] = str(self._next_rv())
            if res.kind == "Namespace":
                obj.setdefault("status", {"phase": "Active"})
            self.objects[key] = obj
            self._emit(res, "ADDED", obj)
            out = copy.deepcopy(obj)
        self._fire("ADDED", res, out)
        return out

    def replace(self, res: Resource, ns: str | None, name: str, obj: dict) -> dict:
        with self.lock:
            key = self._key(res, ns, name)
            old = self.objects.get(key)
            if old is None:
                raise ApiError(404, "NotFound", f'{res.plural}.{res.group or "core"} "{name}" not found')
            obj = copy.deepcopy(obj)
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            md = obj.setdefault("metadata", {})
            for keep in ("uid", "creationTimestamp", "namespace", "name"):
                if keep in old["metadata"]:
                    md[keep] = old["metadata"][keep]
            md["resourceVersion"] = str(self._next_rv())
            self.objects[key] = obj
            self._emit(res, "MODIFIED", obj)
            out = copy.deepcopy(obj)
        self._fire("MODIFIED", res, out)
        return out

    def mutate(self, res: Resource, ns: str | None, name: str, fn: Callable[[dict], None]) -> dict:
        """Read-modify-write under the lock: scripted changes and controllers use this."""
        with self.lock:
            obj = self.get(res, ns, name)
            fn(obj)
            return self.replace(res, ns, name, obj)

    def delete(self, res: Resource, ns: str | None, name: str) -> dict:
        with self.lock:
            key = self._key(res, ns, name)
            obj = self.objects.pop(key, None)
            if obj is None:
                raise ApiError(404, "NotFound", f'{res.plural}.{res.group or "core"} "{name}" not found')
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            self._emit(res, "DELETED", obj)
            if res.kind == "Namespace":
                for k in [k for k in self.objects if k[1] == name]:
                    child = self.objects.pop(k)
                    child_res = next(r for r in self.registry.resources if r.key == k[0])
                    child["metadata"]["resourceVersion"] = str(self._next_rv())
                    self._emit(child_res, "DELETED", child)
            out = copy.deepcopy(obj)
        self._fire("DELETED", res, out)
        return out

    # ------------------------------------------------------------ watch support

    def events_since(self, res: Resource, since_rv: int) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e.rv > since_rv and e.resource.key == res.key]

    def too_old(self, rv: int) -> bool:
        with self.lock:
            return rv < self.compacted_rv

    def cut_watches(self, gone: bool = True) -> None:
        """End every open watch; with gone=True, resuming from any version seen so far yields 410."""
        with self.lock:
            self.cut_epoch += 1
            if gone:
                self.compacted_rv = self._next_rv()
                self.events.clear()
            self.changed.notify_all()

