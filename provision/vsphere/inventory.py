"""Where things live in vCenter: inventory paths derived from the spec, and lookups by path.

Paths are pure functions of the spec (the plan shows them without contacting vCenter).
A lookup that misses raises one UserError line naming the spec field, the full path, and what
does exist at that level, so the fix is obvious.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyVmomi import vim, vmodl

from plumbing.errors import UserError
from provision.spec import ClusterSpec


@dataclass(frozen=True)
class Paths:
    """Full inventory paths ('/DC0/host/C0'), as vCenter's SearchIndex understands them minus the leading '/'."""

    datacenter: str
    cluster: str
    resource_pool: str
    datastore: str
    network: str
    template: str
    folder: str

    def vm(self, name: str) -> str:
        return f"{self.folder}/{name}"


def _under(root: str, kind: str, value: str) -> str:
    # An absolute value is taken as-is; a bare name lives in the datacenter's <kind> folder.
    if value.startswith("/"):
        return "/" + value.strip("/")
    return f"{root}/{kind}/{value.strip('/')}"


def paths(spec: ClusterSpec) -> Paths:
    vs = spec.vsphere
    assert vs is not None
    dc = "/" + vs.datacenter.strip("/")
    cluster = _under(dc, "host", vs.cluster)
    if vs.resource_pool is None:
        pool = f"{cluster}/Resources"
    elif vs.resource_pool.startswith("/"):
        pool = "/" + vs.resource_pool.strip("/")
    else:
        pool = f"{cluster}/Resources/{vs.resource_pool.strip('/')}"
    return Paths(
        datacenter=dc,
        cluster=cluster,
        resource_pool=pool,
        datastore=_under(dc, "datastore", vs.datastore),
        network=_under(dc, "network", vs.network),
        template=_under(dc, "vm", vs.template),
        folder=_under(dc, "vm", vs.folder or spec.name),
    )


def vm_name(spec: ClusterSpec, machine_name: str) -> str:
    # Prefixed with the cluster so two clusters can share a vCenter folder tree without clashing.
    return f"{spec.name}-{machine_name}"


# --------------------------------------------------------------------------- lookups


def find(si: vim.ServiceInstance, path: str) -> vim.ManagedEntity | None:
    return si.content.searchIndex.FindByInventoryPath(path.lstrip("/"))


def _children(si: vim.ServiceInstance, parent_path: str) -> list[str]:
    parent = find(si, parent_path)
    if parent is None:
        return []
    kids: list = []
    if isinstance(parent, vim.Folder):
        kids = list(parent.childEntity)
    elif isinstance(parent, vim.ComputeResource):
        kids = [parent.resourcePool] if parent.resourcePool else []
    elif isinstance(parent, vim.ResourcePool):
        kids = list(parent.resourcePool)
    return sorted(k.name for k in kids)


def _missing(si: vim.ServiceInstance, field: str, path: str, what: str) -> UserError:
    parent = path.rsplit("/", 1)[0] or "/"
    known = _children(si, parent)
    hint = f"; {parent} has: {', '.join(known[:8])}{' …' if len(known) > 8 else ''}" if known else \
        f"; {parent} does not exist either" if find(si, parent) is None and parent != "/" else ""
    return UserError(f"{field}: {what} {path} not found in vCenter{hint}")


def lookup(si: vim.ServiceInstance, field: str, path: str, kind: type, what: str) -> vim.ManagedEntity:
    obj = find(si, path)
    if obj is None:
        raise _missing(si, field, path, what)
    if not isinstance(obj, kind):
        raise UserError(f"{field}: {path} is a {type(obj).__name__.rsplit('.', 1)[-1]}, not a {what}; name a {what}")
    return obj


@dataclass
class Inventory:
    """The resolved objects provisioning needs. Folder may be None: created by provision."""

    paths: Paths
    datacenter: vim.Datacenter
    cluster: vim.ComputeResource
    resource_pool: vim.ResourcePool
    datastore: vim.Datastore
    network: vim.Network
    template: vim.VirtualMachine
    folder: vim.Folder | None


def resolve(si: vim.ServiceInstance, spec: ClusterSpec) -> Inventory:
    """Every lookup up front, before anything is created: a typo costs nothing to roll back."""
    p = paths(spec)
    dc = lookup(si, "vsphere.datacenter", p.datacenter, vim.Datacenter, "datacenter")
    cluster = lookup(si, "vsphere.cluster", p.cluster, vim.ComputeResource, "cluster")
    pool = lookup(si, "vsphere.resource_pool", p.resource_pool, vim.ResourcePool, "resource pool")
    ds = lookup(si, "vsphere.datastore", p.datastore, vim.Datastore, "datastore")
    net = lookup(si, "vsphere.network", p.network, vim.Network, "network")
    template = lookup(si, "vsphere.template", p.template, vim.VirtualMachine, "template VM")
    if template.runtime.powerState != vim.VirtualMachine.PowerState.poweredOff:
        raise UserError(f"vsphere.template: {p.template} is {template.runtime.powerState}; power it off "
                        "(a clone of a running VM is not a clean template)")
    if net._moId not in {n._moId for n in cluster.network}:
        raise UserError(f"vsphere.network: {p.network} is not connected to the hosts of {p.cluster}; "
                        "pick a network (port group) the cluster's hosts have")
    if ds._moId not in {d._moId for d in cluster.datastore}:
        raise UserError(f"vsphere.datastore: {p.datastore} is not mounted on the hosts of {p.cluster}; "
                        "pick a datastore the cluster's hosts share")
    folder = find(si, p.folder)
    if folder is not None and not isinstance(folder, vim.Folder):
        raise UserError(f"vsphere.folder: {p.folder} is a {type(folder).__name__.rsplit('.', 1)[-1]}, not a VM folder")
    parent = find(si, p.folder.rsplit("/", 1)[0])
    if folder is None and not isinstance(parent, vim.Folder):
        raise _missing(si, "vsphere.folder", p.folder.rsplit("/", 1)[0], "parent VM folder")
    return Inventory(paths=p, datacenter=dc, cluster=cluster, resource_pool=pool, datastore=ds, network=net,
                     template=template, folder=folder)


def vms_named(si: vim.ServiceInstance, root: vim.ManagedEntity, names: set[str]) -> dict[str, vim.VirtualMachine]:
    """VMs below root whose name is in names (VM names are unique per folder, not per datacenter)."""
    view = si.content.viewManager.CreateContainerView(root, [vim.VirtualMachine], True)
    try:
        return {vm.name: vm for vm in view.view if vm.name in names}
    finally:
        view.Destroy()


def vm_properties(si: vim.ServiceInstance, root: vim.ManagedEntity, path_set: list[str]
                  ) -> list[tuple[vim.VirtualMachine, dict]]:
    """(VM, {property path: value}) for every VM anywhere below root, in one PropertyCollector
    round trip (plus continuation pages); unset properties are absent."""
    content = si.content
    view = content.viewManager.CreateContainerView(root, [vim.VirtualMachine], True)
    pc = vmodl.query.PropertyCollector
    try:
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[
                pc.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)])],
            propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=path_set)])
        out = []
        result = content.propertyCollector.RetrievePropertiesEx([spec], pc.RetrieveOptions())
        while result is not None:
            out.extend((o.obj, {p.name: p.val for p in o.propSet}) for o in result.objects)
            result = content.propertyCollector.ContinueRetrievePropertiesEx(result.token) if result.token else None
        return out
    finally:
        view.Destroy()


def entity_path(si: vim.ServiceInstance, entity: vim.ManagedEntity) -> str:
    # Stop at the root folder without asking for its parent (unset; govmomi's simulator even panics on it).
    root = si.content.rootFolder._moId
    parts = []
    node = entity
    while node is not None and node._moId != root:
        parts.append(node.name)
        node = node.parent
    return "/" + "/".join(reversed(parts))
