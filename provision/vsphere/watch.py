"""Watch properties of a few vCenter objects as vCenter reports their changes (WaitForUpdatesEx), not by polling."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from pyVmomi import vim, vmodl

from provision.vsphere.connect import CONNECTION_ERRORS, connection_guard


@dataclass(frozen=True)
class Change:
    obj: str  # managed object id, e.g. vm-42, host-21
    name: str  # property path, e.g. runtime.powerState
    value: object
    t: float  # time.monotonic() when okdbench received it


class Watch:
    """A private PropertyCollector with one filter over `targets` ((object, [property paths]) pairs).

    The first wait() returns every watched property's current value; later ones return what changed,
    or [] when vCenter reported nothing within max_wait_s. Use as a context manager: the collector
    is destroyed on exit (a real vCenter keeps it for the session otherwise).
    """

    def __init__(self, si: vim.ServiceInstance, targets: Iterable[tuple[vim.ManagedEntity, list[str]]]):
        self.si = si
        self.targets = list(targets)
        self.version = ""
        self.collector: vmodl.query.PropertyCollector | None = None

    def __enter__(self) -> "Watch":
        root = self.si.content.propertyCollector
        with connection_guard(root, "creating a property collector"):
            self.collector = root.CreatePropertyCollector()
            props: dict[type, set[str]] = {}
            for obj, paths in self.targets:
                props.setdefault(type(obj), set()).update(paths)
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=obj, skip=False) for obj, _ in self.targets],
                propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=sorted(paths))
                         for kind, paths in props.items()])
            self.collector.CreateFilter(spec, partialUpdates=False)
        return self

    def wait(self, max_wait_s: float) -> list[Change]:
        """Changes vCenter reports within max_wait_s (whole seconds, at least 1; the first call returns at once)."""
        assert self.collector is not None
        options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=max(1, int(max_wait_s)))
        with connection_guard(self.collector, "waiting for vCenter updates"):
            update = self.collector.WaitForUpdatesEx(self.version, options)
        now = time.monotonic()
        if update is None:
            return []
        self.version = update.version
        return [Change(obj=o.obj._moId, name=c.name, value=c.val, t=now)
                for fs in update.filterSet or [] for o in fs.objectSet or [] for c in o.changeSet or []]

    def __exit__(self, *exc: object) -> None:
        if self.collector is not None:
            try:
                self.collector.DestroyPropertyCollector()
            except (vmodl.MethodFault, *CONNECTION_ERRORS):  # best effort: the session's end removes it anyway
                pass
            self.collector = None
