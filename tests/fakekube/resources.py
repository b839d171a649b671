"""The resource types the fake API server knows, and the discovery documents built from them."""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    openshift: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"

    @property
    def singular(self) -> str:
        return self.kind.lower()


def _r(group, version, plural, kind, namespaced, subresources=(), short=(), openshift=False) -> Resource:
    return Resource(group, version, plural, kind, namespaced, tuple(subresources), tuple(short), openshift)


RESOURCES: list[Resource] = [
    _r("", "v1", "namespaces", "Namespace", False, ["status"], ["ns"]),
    _r("", "v1", "nodes", "Node", False, ["status"], ["no"]),
    _r("", "v1", "pods", "Pod", True, ["status", "log"], ["po"]),
    _r("", "v1", "configmaps", "ConfigMap", True, [], ["cm"]),
    _r("", "v1", "secrets", "Secret", True),
    _r("", "v1", "events", "Event", True, [], ["ev"]),
    _r("", "v1", "services", "Service", True, ["status"], ["svc"]),
    _r("", "v1", "serviceaccounts", "ServiceAccount", True, [], ["sa"]),
    _r("batch", "v1", "jobs", "Job", True, ["status"]),
    _r("apps", "v1", "deployments", "Deployment", True, ["status"], ["deploy"]),
    _r("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", False,
       ["approval", "status"], ["csr"]),
    _r("config.openshift.io", "v1", "clusteroperators", "ClusterOperator", False, ["status"], ["co"], True),
    _r("config.openshift.io", "v1", "clusterversions", "ClusterVersion", False, ["status"], [], True),
    _r("build.openshift.io", "v1", "builds", "Build", True, ["log", "details"], [], True),
    _r("build.openshift.io", "v1", "buildconfigs", "BuildConfig", True, ["instantiate", "instantiatebinary"], ["bc"], True),
    _r("image.openshift.io", "v1", "imagestreams", "ImageStream", True, ["status"], ["is"], True),
    _r("machineconfiguration.openshift.io", "v1", "machineconfigpools", "MachineConfigPool", False, ["status"], ["mcp"], True),
    _r("operator.openshift.io", "v1", "etcds", "Etcd", False, ["status"], [], True),
    _r("imageregistry.operator.openshift.io", "v1", "configs", "Config", False, ["status"], [], True),
    _r("route.openshift.io", "v1", "routes", "Route", True, ["status"], [], True),
]


@dataclass
class Registry:
    resources: list[Resource] = field(default_factory=list)

    @classmethod
    def build(cls, openshift: bool) -> "Registry":
        return cls([r for r in RESOURCES if openshift or not r.openshift])

    def find(self, group: str, version: str, plural: str) -> Resource | None:
        return next((r for r in self.resources if (r.group, r.version, r.plural) == (group, version, plural)), None)

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        return next((r for r in self.resources if (r.api_version, r.kind) == (api_version, kind)), None)

    def by_plural(self, plural: str) -> Resource | None:
        return next((r for r in self.resources if r.plural == plural), None)

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self.resources:
            if r.group and r.version not in out.setdefault(r.group, []):
                out[r.group].append(r.version)
        return out

    # ------------------------------------------------------------ discovery

    def api_versions(self, server_address: str) -> dict:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        }

    def api_group_list(self) -> dict:
        groups = []
        for name, versions in sorted(self.groups().items()):
            gv = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
            groups.append({"name": name, "versions": gv, "preferredVersion": gv[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict | None:
        items = [r for r in self.resources if (r.group, r.version) == (group, version)]
        if not items:
            return None
        out = []
        for r in items:
            out.append({
                "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                "verbs": ALL_VERBS, **({"shortNames": list(r.short_names)} if r.short_names else {}),
            })
            for sub in r.subresources:
                verbs = ["get"] if sub in ("log",) else ["create"] if sub.startswith("instantiate") else ["get", "patch", "update"]
                out.append({"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                            "kind": r.kind if sub in ("status", "approval") else "Build" if sub.startswith("instantiate") else r.kind,
                            "verbs": verbs})
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}
