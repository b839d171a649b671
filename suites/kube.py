"""Talking to the cluster: one API client with verified TLS, bounded retries, and resumable watches.

Built on the `kubernetes` client's ApiClient (auth, TLS, kubeconfig handling) but addressed by REST
path, so Kubernetes and OpenShift resources go through the same code. Retries are ours, not
urllib3's: bounded, with exponential backoff and jitter, logged, for 429/5xx and dropped
connections only. A watch (Informer) lists, then watches from that resourceVersion; after a
disconnect it resumes from the last version seen, after 410 Gone it re-lists and turns the
difference into events, so a consumer sees every change once and none twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from plumbing.errors import UserError
from plumbing.kubeconfig import read_kubeconfig

log = logging.getLogger("okdbench.kube")

TRANSIENT_STATUS = {429, 500, 502, 503, 504}
OPENSHIFT_GROUP = "config.openshift.io"
NOT_OPENSHIFT = "not an OpenShift/OKD cluster: API group config.openshift.io is not served"


class KubeError(Exception):
    """The cluster answered with an error the caller did not expect. str() is one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class TLSVerificationError(KubeError):
    pass


def _status_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason or "").splitlines()[0] if exc.reason else ""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, ApiException):
        return exc.status in TRANSIENT_STATUS
    if isinstance(exc, KubeError):
        return exc.status in TRANSIENT_STATUS
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    what = f"HTTP {exc.status}" if isinstance(exc, (ApiException, KubeError)) else type(exc).__name__
    log.warning("API request failed (%s), retry %d in %.1fs", what, state.attempt_number, state.next_action.sleep if state.next_action else 0)


class _LegacyResponse:
    """The new generator's RESTResponse surface over a raw urllib3 response."""

    def __init__(self, raw):
        self.response = raw
        self.status = raw.status
        self.data = None

    def read(self) -> bytes:
        if self.data is None:
            self.data = self.response.data
        return self.data


def path_for(api_version: str, plural: str, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
    if sub:
        parts.append(sub)
    return "/".join(parts)


class Kube:
    """One cluster connection. Thread-safe (urllib3 pools are)."""

    def __init__(self, kubeconfig: Path, *, insecure: bool = False, attempts: int = 6, backoff_max_s: float = 8.0):
        cfg = client.Configuration()
        try:
            # Bounded read and shape check first: the client indexes whatever the file holds.
            read_kubeconfig(kubeconfig)
            config.load_kube_config(str(kubeconfig), client_configuration=cfg)
        except UserError as exc:
            raise KubeError(0, str(exc)) from None
        except (config.ConfigException, OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise KubeError(0, f"--kubeconfig: {kubeconfig} cannot be used ({first})") from None
        cfg.retries = False  # retrying is done here, bounded and logged, not silently by urllib3
        if insecure:
            log.warning("--insecure: the API server's TLS certificate is NOT verified")
            cfg.verify_ssl = False
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.insecure = insecure
        self.host = cfg.host
        keys = cfg.api_key or {}
        bearer = keys.get("BearerToken") or keys.get("authorization") or ""
        self.token = bearer.removeprefix("Bearer ").strip() or None
        self.api = client.ApiClient(cfg)
        self.attempts = attempts
        self.backoff_max_s = backoff_max_s
        self._groups: set[str] | None = None
        self.retries = 0

    # ------------------------------------------------------------ raw requests

    def _retrying(self) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            _log_retry(state)

        return Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.1, max=self.backoff_max_s) + wait_random(0, 0.1),
            retry=retry_if_exception(_transient),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any, content_type: str | None,
              timeout: Any):
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        elif body is not None:
            headers["Content-Type"] = "application/json"
        q = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in (query or {}).items() if v is not None]
        try:
            if hasattr(self.api, "param_serialize"):  # kubernetes >= 35 (pydantic-based generator)
                req = self.api.param_serialize(method, path, query_params=q, header_params=headers, body=body,
                                               auth_settings=["BearerToken"])
                resp = self.api.call_api(*req, _request_timeout=timeout)
            else:  # python-legacy generator: raises for non-2xx, hands back urllib3's response
                raw = self.api.call_api(path, method, query_params=q, header_params=headers, body=body,
                                        auth_settings=["BearerToken"], _preload_content=False,
                                        _return_http_data_only=True, _request_timeout=timeout)
                resp = _LegacyResponse(raw)
        except ApiException as exc:
            if exc.status == 0 and "SSL" in str(exc.reason):
                first = str(exc.reason).splitlines()[-1][:200]
                raise TLSVerificationError(0, f"TLS verification of {self.host} failed ({first}); put the cluster CA in the kubeconfig, or pass --insecure") from None
            raise
        if not 200 <= resp.status <= 299:
            resp.read()
            raise ApiException.from_response(http_resp=resp, body=resp.data.decode("utf-8", "replace"), data=None)
        return resp

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str | None = None, timeout: Any = (10, 60), raw: bool = False) -> Any:
        """One API call with bounded retries. JSON answers decode to dicts; raw=True gives text."""
        try:
            for attempt in self._retrying():
                with attempt:
                    resp = self._send(method, path, query, body, content_type, timeout)
                    data = resp.read()
        except ApiException as exc:
            raise KubeError(exc.status or 0, f"{method} {path}: HTTP {exc.status} {_status_message(exc)}".strip()) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(0, f"{method} {path}: {type(exc).__name__} after {self.attempts} attempts") from None
        text = data.decode("utf-8", "replace")
        if raw:
            return text
        return json.loads(text) if text else {}

    # ------------------------------------------------------------ verbs

    def get(self, path: str, **query: Any) -> dict:
        return self.request("GET", path, query=query)

    def get_or_none(self, path: str) -> dict | None:
        try:
            return self.get(path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, path: str, **query: Any) -> list[dict]:
        return self.get(path, **query).get("items") or []

    def create(self, path: str, obj: dict) -> dict:
        """POST; if a retried create finds its own object already there (409), that object is returned."""
        before = self.retries
        try:
            return self.request("POST", path, body=obj)
        except KubeError as exc:
            name = (obj.get("metadata") or {}).get("name")
            if exc.status == 409 and name and self.retries > before:
                return self.get(f"{path}/{name}")
            raise

    def delete(self, path: str, *, missing_ok: bool = True, **query: Any) -> None:
        try:
            self.request("DELETE", path, query=query)
        except KubeError as exc:
            if not (missing_ok and exc.status == 404):
                raise

    def patch(self, path: str, patch: dict, *, kind: str = "merge") -> dict:
        ctype = {"merge": "application/merge-patch+json", "strategic": "application/strategic-merge-patch+json"}[kind]
        return self.request("PATCH", path, body=patch, content_type=ctype)

    def post_bytes(self, path: str, data: bytes, query: dict[str, Any] | None = None) -> dict:
        return self.request("POST", path, body=data, content_type="application/octet-stream", query=query)

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        return self.request("GET", path_for("v1", "pods", namespace, pod, "log"), query={"container": container}, raw=True)

    # ------------------------------------------------------------ discovery

    def groups(self) -> set[str]:
        if self._groups is None:
            doc = self.get("/apis")
            self._groups = {g["name"] for g in doc.get("groups", [])}
        return self._groups

    def has_group(self, group: str) -> bool:
        return group in self.groups()

    def is_openshift(self) -> bool:
        return self.has_group(OPENSHIFT_GROUP)

    def version(self) -> dict:
        return self.get("/version")

    def stream(self, path: str, query: dict[str, Any], read_timeout: float):
        """Open a watch stream (retried like any request until it is open)."""
        for attempt in self._retrying():
            with attempt:
                return self._send("GET", path, query, None, None, (10, read_timeout))
        raise AssertionError("unreachable")


# ---------------------------------------------------------------- watch


def _lines(resp) -> Iterator[bytes]:
    buf = b""
    for chunk in resp.response.stream(8192, decode_content=False):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line
    if buf.strip():
        yield buf


def _uid(obj: dict) -> str:
    md = obj.get("metadata") or {}
    return md.get("uid") or f"{md.get('namespace', '')}/{md.get('name', '')}"


Handler = Callable[[str, dict | None, dict | None], Any]


@dataclass
class WatchStats:
    relists: int = 0  # 410 Gone answered by a fresh list
    resumes: int = 0  # disconnects resumed from the last resourceVersion
    events: int = 0


@dataclass
class Informer:
    """List-then-watch of one collection with a local cache, like client-go's reflector.

    handler(type, old, new) is called for ADDED (old None), MODIFIED and DELETED (new None),
    including the changes discovered by a re-list after 410 Gone. Returning True stops run().
    """

    kube: Kube
    path: str
    label_selector: str | None = None
    field_selector: str | None = None
    window_s: float = 300.0  # server-side timeoutSeconds per watch request
    cache: dict[str, dict] = field(default_factory=dict)
    stats: WatchStats = field(default_factory=WatchStats)
    rv: str | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._resp = None
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._resp is not None:
                try:
                    self._resp.response.shutdown()
                except (AttributeError, OSError):
                    self._resp.response.close()

    def _query(self) -> dict[str, Any]:
        return {"labelSelector": self.label_selector, "fieldSelector": self.field_selector}

    def sync(self, handler: Handler | None) -> bool:
        """(Re-)list and turn the difference with the cache into events."""
        doc = self.kube.get(self.path, **self._query())
        self.rv = (doc.get("metadata") or {}).get("resourceVersion")
        fresh = {_uid(o): o for o in doc.get("items") or []}
        stop = False
        for uid in [u for u in self.cache if u not in fresh]:
            old = self.cache.pop(uid)
            stop |= bool(handler and handler("DELETED", old, None))
        for uid, obj in fresh.items():
            old = self.cache.get(uid)
            self.cache[uid] = obj
            if old is None:
                stop |= bool(handler and handler("ADDED", None, obj))
            elif (old.get("metadata") or {}).get("resourceVersion") != (obj.get("metadata") or {}).get("resourceVersion"):
                stop |= bool(handler and handler("MODIFIED", old, obj))
        return stop

    def run(self, handler: Handler | None = None, until: float | None = None, *, initial: bool = True,
            done: Callable[[], bool] | None = None) -> None:
        """Deliver events until handler returns True, done() is true (checked after the list and each
        event), stop() is called or time.monotonic() >= until."""
        def finished(stop: bool) -> bool:
            return stop or bool(done and done())

        if initial and finished(self.sync(handler)):
            return
        failures = 0
        while not self._stop.is_set():
            remaining = (until - time.monotonic()) if until is not None else self.window_s
            if remaining <= 0:
                return
            query = {**self._query(), "watch": "true", "resourceVersion": self.rv, "allowWatchBookmarks": "true",
                     "timeoutSeconds": max(1, int(min(self.window_s, remaining + 0.999)))}
            try:
                resp = self.kube.stream(self.path, query, read_timeout=min(self.window_s, remaining) + 30)
                with self._lock:
                    self._resp = resp
                if self._stop.is_set():
                    return
                gone = False
                for line in _lines(resp):
                    ev = json.loads(line)
                    type_, obj = ev.get("type"), ev.get("object") or {}
                    if type_ == "ERROR":
                        if obj.get("code") == 410:
                            gone = True
                            break
                        raise KubeError(int(obj.get("code") or 0), f"watch {self.path}: {obj.get('message')}")
                    self.rv = (obj.get("metadata") or {}).get("resourceVersion") or self.rv
                    failures = 0
                    if type_ == "BOOKMARK":
                        continue
                    self.stats.events += 1
                    uid = _uid(obj)
                    old = self.cache.get(uid)
                    if type_ == "DELETED":
                        self.cache.pop(uid, None)
                        stop = bool(handler and handler("DELETED", old, None))
                    else:
                        self.cache[uid] = obj
                        stop = bool(handler and handler("ADDED" if old is None else "MODIFIED", old, obj))
                    if finished(stop):
                        return
                if gone:
                    self.stats.relists += 1
                    log.info("watch %s: 410 Gone at resourceVersion %s, re-listing", self.path, self.rv)
                    if finished(self.sync(handler)):
                        return
            except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, ValueError) as exc:
                if self._stop.is_set():
                    return
                failures += 1
                if failures > 8:
                    raise KubeError(0, f"watch {self.path}: {failures} consecutive disconnects ({type(exc).__name__})") from None
                self.stats.resumes += 1
                log.info("watch %s dropped (%s); resuming from resourceVersion %s", self.path, type(exc).__name__, self.rv)
                time.sleep(min(2.0, 0.1 * 2 ** failures))
            except ApiException as exc:
                if exc.status == 410:
                    self.stats.relists += 1
                    if finished(self.sync(handler)):
                        return
                    continue
                raise KubeError(exc.status or 0, f"watch {self.path}: HTTP {exc.status} {_status_message(exc)}") from None
            finally:
                with self._lock:
                    if self._resp is not None:
                        self._resp.response.close()  # a stream left mid-way cannot go back to the pool
                    self._resp = None

    def run_in_thread(self, handler: Handler | None = None, until: float | None = None,
                      done: Callable[[], bool] | None = None, initial: bool = True) -> threading.Thread:
        errors: list[BaseException] = []

        def target() -> None:
            try:
                self.run(handler, until, done=done, initial=initial)
            except BaseException as exc:  # callers read thread.errors after join()
                errors.append(exc)

        t = threading.Thread(target=target, daemon=True, name=f"informer {self.path}")
        t.errors = errors  # type: ignore[attr-defined]
        t.start()
        return t


def wait_for(kube: Kube, path: str, predicate: Callable[[dict], bool], timeout_s: float, *,
             label_selector: str | None = None, field_selector: str | None = None) -> dict | None:
    """Watch `path` until an object satisfies predicate; that object, or None at the timeout."""
    found: list[dict] = []

    def handler(type_: str, old: dict | None, new: dict | None) -> bool:
        if new is not None and predicate(new):
            found.append(new)
            return True
        return False

    Informer(kube, path, label_selector, field_selector).run(handler, until=time.monotonic() + timeout_s)
    return found[0] if found else None


def node_identities(kube: Kube) -> list[dict]:
    """Name, providerID and addresses of every node: what ties a hypervisor VM to its Kubernetes node."""
    return [{"name": n["metadata"]["name"], "provider_id": n.get("spec", {}).get("providerID", ""),
             "addresses": [a.get("address", "") for a in n.get("status", {}).get("addresses", [])]}
            for n in kube.list("/api/v1/nodes")]


def condition(obj: dict, type_: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


def condition_is(obj: dict, type_: str, status: str = "True") -> bool:
    c = condition(obj, type_)
    return c is not None and c.get("status") == status


def age_s(timestamp: str | None) -> float | None:
    """Seconds since an API timestamp (RFC 3339, UTC), or None when absent/unreadable."""
    from datetime import datetime, timezone

    if not timestamp:
        return None
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (datetime.now(timezone.utc) - then).total_seconds()


# Something that changed this recently may still be settling (a node joining, a CSR about to be
# approved); older trouble is stuck and waiting for it only delays the verdict.
SETTLING_S = 600.0


def settling(timestamp: str | None) -> bool:
    age = age_s(timestamp)
    return age is not None and age < SETTLING_S

