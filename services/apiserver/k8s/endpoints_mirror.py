"""core/v1 Endpoints, derived from a Service's EndpointSlices as Kubernetes' Endpoints
controller would have written them: the read-only view the HTTP front serves.

kubelab stores no Endpoints. Kubernetes keeps both APIs, each written by its own
controller from the pods (`pkg/controller/endpoint`, `pkg/controller/endpointslice`);
kubelab has only the slice controller, and this module reads its slices back into
the older shape, so the tools that still ask for `endpoints` (`kubectl get ep`,
informers of the Python client) see what a Kubernetes cluster shows them.

Which slices: those the EndpointSlice controller manages
(`endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`), grouped
by their `kubernetes.io/service-name` label (`service_key`). One Endpoints per Service
that has at least one slice. The controller keeps a placeholder slice for a Service
with a selector and no pods, so, as in Kubernetes, every Service with a selector has
Endpoints, and ExternalName and selector-less Services have none. Slices of another
manager are never mirrored: Kubernetes' mirroring runs the other way (Endpoints →
slices, for Services without a selector), and reading its slices back would be a loop.

Identity (`endpoints_of`): the Service's name and namespace; the Service's labels as its
slices carry them (the controller copies them on), without the two slice-only labels;
`service.kubernetes.io/headless` stays, as the Endpoints controller sets it on a headless
Service's Endpoints. `uid` is a UUID5 of the Service's uid (stable across reads, not
the Service's own), `creationTimestamp` the oldest slice's, `resourceVersion` the
newest slice's mod revision (a watch event carries its own revision instead: a deleted
slice leaves no newer revision behind). No skip-mirror label: it tells Kubernetes'
mirroring controller to leave an Endpoints alone, and it leaves these alone anyway
(their Services have selectors), as it does the Endpoints controller's, which lack it.

Addresses: per slice endpoint its first address (discovery/v1: consumers may use only
the first), with hostname, nodeName and targetRef (kind, namespace, name, uid). Ready
(unset counts as ready) → `addresses`; not ready but terminating → left out (the
Endpoints controller never lists a terminating pod, `ShouldPodBeInEndpoints`, unless the
Service publishes not-ready addresses, which its slices already mark ready); otherwise
→ `notReadyAddresses`.

Subsets are Kubernetes' canonical layout (`RepackSubsets`): every (address, port) pair,
an address keyed by IP and target uid, not-ready on a port if any slice says so; then
addresses grouped by the exact set of ports they offer, ready and not ready alike. A
slice without ports (a headless Service without ports) gives a subset without ports.
Order: addresses by IP (compared as text) then uid (`LessEndpointAddress`); ports by
name, port, protocol; subsets by their ports, then their first address. (Kubernetes
sorts ports and subsets by a hash: an order with no meaning; this one is as stable and
reads better.) Past 1,000 addresses the subsets are truncated as the controller
truncates them (`truncateEndpoints`: ready ones first, each subset its share) and
annotated `endpoints.kubernetes.io/over-capacity: truncated`.

`endpoints_cell` is kubectl's ENDPOINTS column (`formatEndpoints`). Pure: no I/O.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubelab.core import kinds
from kubelab.core.endpointslices import MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from kubelab.core.keys import ObjectKey
from kubelab.v1 import objects_pb2

KIND = "Endpoints"
API_VERSION = "v1"
RESOURCE = "endpoints"
# Kubernetes' `maxCapacity` of one Endpoints object, and the annotation saying it was hit.
MAX_CAPACITY = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
TRUNCATED = "truncated"
# What the ENDPOINTS column shows before "+ N more..." (kubectl's formatEndpoints).
_SHOWN = 3
_SLICE_ONLY_LABELS = frozenset({SERVICE_NAME_LABEL, MANAGED_BY_LABEL})
_IP_TYPES = frozenset({"IPv4", "IPv6"})
# Fixed and arbitrary: Endpoints uids are UUID5s of their Service's uid in this namespace.
_UID_NAMESPACE = uuid.UUID("1f0c6a52-8b1e-5d5c-9f1e-6b6c61627e65")

Slice = objects_pb2.EndpointSlice
Endpoints = dict[str, Any]  # the Endpoints as the HTTP API answers it (JSON)
_AddressKey = tuple[str, str]  # (ip, targetRef uid): Kubernetes' `addressKey`


def service_key(eps: Slice) -> ObjectKey | None:
    """The Service whose Endpoints this slice is part of; None for a slice not mirrored."""
    labels = eps.metadata.labels
    name = labels.get(SERVICE_NAME_LABEL, "")
    if not name or labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return None
    return ObjectKey((eps.metadata.namespace, name))


def by_service(slices: Iterable[Slice]) -> dict[ObjectKey, list[Slice]]:
    """The mirrored slices, grouped by their Service."""
    out: dict[ObjectKey, list[Slice]] = {}
    for eps in slices:
        key = service_key(eps)
        if key is not None:
            out.setdefault(key, []).append(eps)
    return out


def mirror_all(slices: Iterable[Slice]) -> list[Endpoints]:
    """Every Endpoints the slices make, ordered by namespace and name."""
    grouped = by_service(slices)
    return [e for key in sorted(grouped) if (e := endpoints_of(key, grouped[key])) is not None]


@dataclass(frozen=True, slots=True, order=True)
class _Port:
    name: str
    port: int
    protocol: str
    app_protocol: str

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name} if self.name else {}
        body["port"] = self.port
        body["protocol"] = self.protocol
        if self.app_protocol:
            body["appProtocol"] = self.app_protocol
        return body


def _revision(eps: Slice) -> int:
    text = eps.metadata.resource_version
    return int(text) if text.isdigit() else 0


def endpoints_of(key: ObjectKey, slices: Sequence[Slice]) -> Endpoints | None:
    """The Endpoints of the Service `key` names, from its slices (others are ignored);
    None when it has none."""
    mine = sorted((s for s in slices if service_key(s) == key), key=lambda s: s.metadata.name)
    if not mine:
        return None
    namespace, name = key
    newest = max(mine, key=_revision)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": str(uuid.uuid5(_UID_NAMESPACE, _service_uid(newest) or f"{namespace}/{name}")),
        "resourceVersion": str(_revision(newest)),
    }
    created = [
        s.metadata.creation_timestamp for s in mine if s.metadata.HasField("creation_timestamp")
    ]
    if created:
        metadata["creationTimestamp"] = min(
            created, key=lambda t: (t.seconds, t.nanos)
        ).ToJsonString()
    labels = {k: v for k, v in newest.metadata.labels.items() if k not in _SLICE_ONLY_LABELS}
    if labels:
        metadata["labels"] = dict(sorted(labels.items()))
    subsets = repack(_entries(mine))
    if truncate(subsets):
        metadata["annotations"] = {OVER_CAPACITY: TRUNCATED}
    body: Endpoints = {"kind": KIND, "apiVersion": API_VERSION, "metadata": metadata}
    if subsets:
        body["subsets"] = subsets
    return body


def _service_uid(eps: Slice) -> str:
    for ref in eps.metadata.owner_references:
        if ref.kind == kinds.SERVICES.kind and ref.uid:
            return str(ref.uid)
    return ""


# One address on a set of ports, ready or not: a one-address subset before repacking.
Entry = tuple[tuple[_Port, ...], dict[str, Any], bool]


def _entries(slices: Iterable[Slice]) -> Iterable[Entry]:
    for eps in slices:
        if eps.address_type and eps.address_type not in _IP_TYPES:
            continue  # FQDN slices: an Endpoints address is an IP
        ports = tuple(
            _Port(p.name, p.port, p.protocol or "TCP", p.app_protocol)
            for p in eps.ports
            if p.HasField("port")
        )
        for endpoint in eps.endpoints:
            if not endpoint.addresses:
                continue
            conditions = endpoint.conditions
            ready = not conditions.HasField("ready") or conditions.ready
            if not ready and conditions.HasField("terminating") and conditions.terminating:
                continue
            yield ports, _address(endpoint), ready


def _address(endpoint: objects_pb2.Endpoint) -> dict[str, Any]:
    body: dict[str, Any] = {"ip": endpoint.addresses[0]}
    if endpoint.hostname:
        body["hostname"] = endpoint.hostname
    if endpoint.node_name:
        body["nodeName"] = endpoint.node_name
    if endpoint.HasField("target_ref"):
        ref = endpoint.target_ref
        shown = {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name, "uid": ref.uid}
        body["targetRef"] = {k: v for k, v in shown.items() if v}
    return body


def _address_key(address: Mapping[str, Any]) -> _AddressKey:
    return str(address["ip"]), str(address.get("targetRef", {}).get("uid", ""))


def repack(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """Kubernetes' `RepackSubsets`: addresses grouped by the exact ports they offer."""
    addresses: dict[_AddressKey, dict[str, Any]] = {}
    # Per port (None: the sentinel for entries without ports), each address's readiness.
    readiness: dict[_Port | None, dict[_AddressKey, bool]] = {}
    for ports, address, ready in entries:
        key = _address_key(address)
        addresses.setdefault(key, address)
        for port in ports or (None,):
            states = readiness.setdefault(port, {})
            # Not ready wins: not ready on a port anywhere is not ready on it.
            states[key] = states.get(key, True) and ready
    groups: dict[frozenset[tuple[_AddressKey, bool]], list[_Port]] = {}
    for port, states in readiness.items():
        group = groups.setdefault(frozenset(states.items()), [])
        if port is not None:
            group.append(port)
    subsets = []
    for grouped, offered in groups.items():
        subset: dict[str, Any] = {}
        ready_keys = sorted(k for k, r in grouped if r)
        not_ready = sorted(k for k, r in grouped if not r)
        if ready_keys:
            subset["addresses"] = [addresses[k] for k in ready_keys]
        if not_ready:
            subset["notReadyAddresses"] = [addresses[k] for k in not_ready]
        if offered:
            subset["ports"] = [p.to_json() for p in sorted(offered)]
        first = min(k for k, _ in grouped)
        subsets.append((tuple(sorted(offered)), first, subset))
    return [subset for _, _, subset in sorted(subsets, key=lambda s: (s[0], s[1]))]


def truncate(subsets: list[dict[str, Any]]) -> bool:
    """Kubernetes' `truncateEndpoints`, in place: at most MAX_CAPACITY addresses, not-ready
    ones dropped first, each subset keeping its share (rounded up). True when it cut."""
    total_ready = sum(len(s.get("addresses", ())) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses", ())) for s in subsets)
    if total_ready + total_not_ready <= MAX_CAPACITY:
        return False
    cut_ready = total_ready > MAX_CAPACITY
    field = "addresses" if cut_ready else "notReadyAddresses"
    room = MAX_CAPACITY if cut_ready else MAX_CAPACITY - total_ready
    total = total_ready if cut_ready else total_not_ready
    left = room
    for subset in subsets:
        share = math.ceil(len(subset.get(field, ())) / total * room)
        kept = subset.get(field, [])[: min(share, left)]
        if kept:
            subset[field] = kept
        else:
            subset.pop(field, None)
        if cut_ready:
            subset.pop("notReadyAddresses", None)
        left -= len(kept)
    return True


def ready_addresses(endpoints: Mapping[str, Any]) -> list[str]:
    """Every ready IP, once per subset that lists it."""
    return [a["ip"] for s in endpoints.get("subsets", ()) for a in s.get("addresses", ())]


def endpoints_cell(endpoints: Mapping[str, Any]) -> str:
    """kubectl's ENDPOINTS column (`formatEndpoints`): `ip:port` per ready address and
    port, three at most and `+ N more...`; `<none>` without subsets, "" when no
    address is ready."""
    subsets = endpoints.get("subsets", ())
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for subset in subsets:
        ips = [a["ip"] for a in subset.get("addresses", ())]
        ports = subset.get("ports", ())
        for port in ports or (None,):
            count += len(ips)
            for ip in ips:
                if len(shown) == _SHOWN:
                    break
                shown.append(ip if port is None else _host_port(ip, port["port"]))
    text = ",".join(shown)
    return f"{text} + {count - _SHOWN} more..." if count > _SHOWN else text


def _host_port(ip: str, port: int) -> str:
    # Go's net.JoinHostPort: an IPv6 address goes in brackets.
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def without_version(endpoints: Mapping[str, Any]) -> dict[str, Any]:
    """The Endpoints but its resourceVersion: what a change must change to be one."""
    metadata = {k: v for k, v in endpoints["metadata"].items() if k != "resourceVersion"}
    return {**endpoints, "metadata": metadata}
