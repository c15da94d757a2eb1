"""kubectl's cells: object -> the strings `kubelab get` and the HTTP API's Tables show.

Pure functions, no I/O, shared by the CLI (`kubelab.cli.printers` lays the cells out in
columns) and the apiserver (`services/apiserver/rest/tables.py` answers
`Accept: application/json;as=Table` with them), so both print an object the same way.

The cell rules copy kubectl's printers (`pkg/printers/internalversion`):
`PORT(S)` is `80:30080/TCP`, EXTERNAL-IP is `<pending>` for a LoadBalancer
without ingress, a pod's STATUS comes from its containers' waiting/terminated
reasons, EndpointSlice lists show three entries then `+ N more...`, and AGE is
`duration.HumanDuration` (`5s`, `3m2s`, `4h`, `2d`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.core import selectors
from kubelab.core.kinds import KindInfo
from kubelab.v1 import meta_pb2, objects_pb2

NONE = "<none>"


# ---------------------------------------------------------------- small formatters


def format_age(seconds: float) -> str:
    """kubectl's `duration.HumanDuration`: coarser as the duration grows."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"  # clocks a second apart still mean "now"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d" if hours % 24 == 0 else f"{days}d{hours % 24}h"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return f"{days // 365}y" if days % 365 == 0 else f"{days // 365}y{days % 365}d"
    return f"{days // 365}y"


def timestamp(ts: Timestamp | None) -> datetime | None:
    """A set protobuf Timestamp as an aware datetime; None when unset."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=UTC)


def age(ts: Timestamp | None, now: datetime) -> str:
    when = timestamp(ts)
    if when is None:
        return "<unknown>"
    return format_age((now - when).total_seconds())


def format_labels(labels: Mapping[str, str]) -> str:
    """`k=v,k2=v2` sorted by key (kubectl's `labels.FormatLabels`), `<none>` when empty."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels)) or NONE


def format_label_selector(selector: meta_pb2.LabelSelector) -> str:
    """A Deployment's selector as kubectl's `FormatLabelSelector` prints it."""
    try:
        text = str(selectors.from_label_selector(selector))
    except ValueError:
        return "<error>"
    return text or NONE


def more_list(items: Sequence[str], limit: int = 3) -> str:
    """`a,b,c + 2 more...` (kubectl's `listWithMoreString`), `<unset>` when empty."""
    shown = ",".join(items[:limit])
    if len(items) > limit:
        return f"{shown} + {len(items) - limit} more..."
    return shown or "<unset>"


def metadata(obj: Message) -> meta_pb2.ObjectMeta:
    meta: meta_pb2.ObjectMeta = cast(Any, obj).metadata  # every kind has one
    return meta


def kind_ref(info: KindInfo) -> str:
    """How kubectl names a kind in `kind/name`: `service`, `deployment.apps`,
    `endpointslice.discovery.k8s.io` (the API group follows the lowercase kind)."""
    group = info.api_version.rpartition("/")[0]
    return f"{info.kind.lower()}.{group}" if group else info.kind.lower()


# ---------------------------------------------------------------- per-kind cells


def service_external_ip(svc: objects_pb2.Service) -> str:
    """kubectl's `getServiceExternalIP`."""
    spec = svc.spec
    kind = spec.type or "ClusterIP"
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(spec.external_ips) or NONE
    if kind == "LoadBalancer":
        ips = [i.ip or i.hostname for i in svc.status.load_balancer.ingress]
        ips += list(spec.external_ips)
        return ",".join(ips) or "<pending>"
    if kind == "ExternalName":
        return spec.external_name or NONE
    return "<unknown>"


def service_ports(svc: objects_pb2.Service) -> str:
    parts = []
    for port in svc.spec.ports:
        protocol = port.protocol or "TCP"
        if port.node_port:
            parts.append(f"{port.port}:{port.node_port}/{protocol}")
        else:
            parts.append(f"{port.port}/{protocol}")
    return ",".join(parts) or NONE


def service_cells(svc: objects_pb2.Service, now: datetime) -> list[str]:
    return [
        svc.spec.type or "ClusterIP",
        svc.spec.cluster_ip or NONE,
        service_external_ip(svc),
        service_ports(svc),
        age(svc.metadata.creation_timestamp, now),
        format_labels(svc.spec.selector),
    ]


def pod_phase(pod: objects_pb2.Pod) -> tuple[str, int, int]:
    """(STATUS, ready containers, restarts) by kubectl's `printPod` rules."""
    reason = pod.status.reason or pod.status.phase or "Pending"
    ready = restarts = 0
    running = False
    for cs in reversed(pod.status.container_statuses):
        restarts += cs.restart_count
        state = cs.state
        if state.HasField("waiting") and state.waiting.reason:
            reason = state.waiting.reason
        elif state.HasField("terminated") and state.terminated.reason:
            reason = state.terminated.reason
        elif state.HasField("terminated"):
            term = state.terminated
            reason = f"Signal:{term.signal}" if term.signal else f"ExitCode:{term.exit_code}"
        elif cs.ready:
            running = True
            ready += 1
    if reason == "Completed" and running:
        pod_ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
        reason = "Running" if pod_ready else "NotReady"
    if pod.metadata.HasField("deletion_timestamp"):
        reason = "Unknown" if pod.status.reason == "NodeLost" else "Terminating"
    return reason, ready, restarts


def _last_restart(pod: objects_pb2.Pod) -> datetime | None:
    finished = [
        timestamp(cs.last_state.terminated.finished_at)
        for cs in pod.status.container_statuses
        if cs.last_state.HasField("terminated")
    ]
    known = [f for f in finished if f is not None]
    return max(known) if known else None


def pod_cells(pod: objects_pb2.Pod, now: datetime) -> list[str]:
    status, ready, restarts = pod_phase(pod)
    restart_text = str(restarts)
    last = _last_restart(pod)
    if restarts and last is not None:
        restart_text += f" ({format_age((now - last).total_seconds())} ago)"
    return [
        f"{ready}/{len(pod.spec.containers)}",
        status,
        restart_text,
        age(pod.metadata.creation_timestamp, now),
        pod.status.pod_ip or NONE,
        pod.spec.node_name or NONE,
    ]


def deployment_cells(deploy: objects_pb2.Deployment, now: datetime) -> list[str]:
    spec, st = deploy.spec, deploy.status
    desired = spec.replicas if spec.HasField("replicas") else 1
    containers = spec.template.spec.containers
    return [
        f"{st.ready_replicas}/{desired}",
        str(st.updated_replicas),
        str(st.available_replicas),
        age(deploy.metadata.creation_timestamp, now),
        ",".join(c.name for c in containers) or NONE,
        ",".join(c.image for c in containers) or NONE,
        format_label_selector(spec.selector),
    ]


def endpoint_slice_cells(eps: objects_pb2.EndpointSlice, now: datetime) -> list[str]:
    ports = [
        str(p.port) if p.HasField("port") else (p.name or "*")  # kubectl: number, name, or *
        for p in eps.ports
    ]
    addresses = [a for e in eps.endpoints for a in e.addresses]
    return [
        eps.address_type or NONE,
        more_list(ports),
        more_list(addresses),
        age(eps.metadata.creation_timestamp, now),
    ]


def node_status(node: objects_pb2.Node) -> str:
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    status = ["Ready" if ready[0].status == "True" else "NotReady"] if ready else ["Unknown"]
    if node.spec.unschedulable:
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_cells(node: objects_pb2.Node, now: datetime) -> list[str]:
    internal = [a.address for a in node.status.addresses if a.type == "InternalIP"]
    return [
        node_status(node),
        age(node.metadata.creation_timestamp, now),
        internal[0] if internal else NONE,
        node.spec.pod_cidr or NONE,
    ]


def namespace_cells(namespace: objects_pb2.Namespace, now: datetime) -> list[str]:
    return [namespace.status.phase or NONE, age(namespace.metadata.creation_timestamp, now)]


def event_source(event: objects_pb2.Event) -> str:
    """kubectl's `formatEventSource`: `component, host`, `<unknown>` without a component."""
    component = event.source.component or event.reporting_component
    if not component:
        return "<unknown>"
    host = event.source.host or event.reporting_instance
    return f"{component}, {host}" if host else component


def event_cells(event: objects_pb2.Event, now: datetime) -> list[str]:
    """kubectl's `printEvent`: LAST SEEN falls back to the first, COUNT 0 reads as 1."""
    first = age(event.first_timestamp, now)
    if timestamp(event.first_timestamp) is None:
        first = age(event.event_time, now)
    last = age(event.last_timestamp, now) if timestamp(event.last_timestamp) else first
    ref = event.involved_object
    target = f"{ref.kind.lower()}/{ref.name}" if ref.name else ref.kind.lower()
    return [
        last,
        event.type,
        event.reason,
        target,
        event.message.strip(),
        ref.field_path,
        event_source(event),
        first,
        str(event.count or 1),
        event.metadata.name,
    ]


# `event_cells` gives LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, then the wide columns
# SUBOBJECT, SOURCE, FIRST SEEN, COUNT, NAME; kubectl's -o wide (and Kubernetes' Table)
# puts MESSAGE after SOURCE: the cells in that order.
EVENT_WIDE_ORDER = (0, 1, 2, 3, 5, 6, 4, 7, 8, 9)
