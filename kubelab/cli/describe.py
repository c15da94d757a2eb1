"""`kubelab describe`: a readable, multi-line view of objects, after kubectl's.

The describers are pure (`describe_service(svc, slices) -> str`, ...) and
unit-tested; the command only fetches. A Service's `Endpoints:` lines come
from its EndpointSlices (label `kubernetes.io/service-name`), as in kubectl
1.19+: the ready addresses with the target port of each Service port.
Alignment follows kubectl's tabwriter: the values of one block start in one
column; lists (labels, annotations) continue on the lines below. Every object
ends with its `Events:` (`kubelab.cli.events`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import click
import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.cli.common import (
    Settings,
    api_options,
    check_selector,
    parse_targets,
    pass_settings,
    run,
    target_names,
)
from kubelab.cli.errors import CliError, from_api_error
from kubelab.cli.events import events_section, object_events
from kubelab.cli.printers import render
from kubelab.cli.served import live_node_addresses, service_slices
from kubelab.client import ApiError, Client
from kubelab.core import kinds
from kubelab.core.printing import (
    NONE,
    format_label_selector,
    format_labels,
    node_status,
    pod_phase,
    timestamp,
)
from kubelab.core.proxy_rules import served_at
from kubelab.v1 import meta_pb2, objects_pb2

_GAP = 2


class Doc:
    """Lines of `Key:  value`, aligned per block; `block()` starts a new one."""

    def __init__(self) -> None:
        self._blocks: list[list[tuple[int, str, str]]] = [[]]

    def field(self, key: str, value: object, level: int = 0) -> None:
        self._blocks[-1].append((level, f"{key}:", str(value)))

    def items(self, key: str, values: Sequence[str], level: int = 0) -> None:
        """One value per line, the first beside the key (kubectl's labels)."""
        self.field(key, values[0] if values else NONE, level)
        for value in values[1:]:
            self._blocks[-1].append((level, "", value))

    def heading(self, text: str, level: int = 0) -> None:
        self._blocks.append([(level, text, "")])
        self._blocks.append([])

    def render(self) -> str:
        lines = []
        for block in self._blocks:
            widths: dict[int, int] = {}
            for level, key, _ in block:
                widths[level] = max(widths.get(level, 0), len(key))
            for level, key, value in block:
                indent = "  " * level
                if not value:
                    lines.append(indent + key)
                else:
                    lines.append(f"{indent}{key.ljust(widths[level] + _GAP)}{value}".rstrip())
        return "\n".join(lines) + "\n"


def _pairs(values: Mapping[str, str]) -> list[str]:
    return [f"{k}={values[k]}" for k in sorted(values)]


def _time(ts: Timestamp) -> str:
    when = timestamp(ts)
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000") if when else NONE


def _header(doc: Doc, meta: meta_pb2.ObjectMeta, namespaced: bool) -> None:
    doc.field("Name", meta.name)
    if namespaced:
        doc.field("Namespace", meta.namespace)
    doc.items("Labels", _pairs(meta.labels))
    doc.items("Annotations", _pairs(meta.annotations))


def _slice_endpoints(
    slices: Iterable[objects_pb2.EndpointSlice], port: objects_pb2.ServicePort
) -> str:
    """Ready addresses with the slice port of the same name (kubectl's
    `formatEndpointSlices`); unset `ready` counts as ready."""
    found = []
    for eps in slices:
        numbers = [p.port for p in eps.ports if p.name == port.name and p.HasField("port")]
        if not numbers:
            continue
        for endpoint in eps.endpoints:
            cond = endpoint.conditions
            if cond.HasField("ready") and not cond.ready:
                continue
            found += [f"{address}:{numbers[0]}" for address in endpoint.addresses]
    return ",".join(found) or NONE


def describe_service(
    svc: objects_pb2.Service,
    slices: Sequence[objects_pb2.EndpointSlice],
    nodes: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """`nodes` (live node → addresses) adds where each port is served."""
    spec = svc.spec
    served = dict((p.name, places) for p, places in served_at(svc, slices, nodes or {}))
    kind = spec.type or "ClusterIP"
    doc = Doc()
    _header(doc, svc.metadata, True)
    doc.field("Selector", format_labels(spec.selector))
    doc.field("Type", kind)
    if spec.ip_family_policy:
        doc.field("IP Family Policy", spec.ip_family_policy)
    if spec.ip_families:
        doc.field("IP Families", ",".join(spec.ip_families))
    doc.field("IP", spec.cluster_ip or NONE)
    if spec.cluster_ips:
        doc.field("IPs", ",".join(spec.cluster_ips))
    if spec.external_ips:
        doc.field("External IPs", ",".join(spec.external_ips))
    if spec.load_balancer_ip:
        doc.field("IP", spec.load_balancer_ip)
    if kind == "ExternalName":
        doc.field("External Name", spec.external_name)
    if kind == "LoadBalancer":
        ingress = [i.ip or i.hostname for i in svc.status.load_balancer.ingress]
        doc.field("LoadBalancer Ingress", ", ".join(ingress) or "<pending>")
    for port in spec.ports:
        name = port.name or "<unset>"
        protocol = port.protocol or "TCP"
        doc.field("Port", f"{name}  {port.port}/{protocol}")
        doc.field("TargetPort", f"{port.target_port or port.port}/{protocol}")
        if port.node_port:
            doc.field("NodePort", f"{name}  {port.node_port}/{protocol}")
        doc.field("Endpoints", _slice_endpoints(slices, port))
        if nodes is not None:
            doc.field("Served At", ",".join(served.get(port.name, [])) or NONE)
    doc.field("Session Affinity", spec.session_affinity or "None")
    if spec.session_affinity == "ClientIP" and spec.session_affinity_config.client_ip:
        timeout = spec.session_affinity_config.client_ip.timeout_seconds
        doc.field("Session Affinity Timeout", f"{timeout}s")
    if kind in ("NodePort", "LoadBalancer"):
        doc.field("External Traffic Policy", spec.external_traffic_policy or "Cluster")
    if spec.internal_traffic_policy:
        doc.field("Internal Traffic Policy", spec.internal_traffic_policy)
    if spec.health_check_node_port:
        doc.field("HealthCheck NodePort", spec.health_check_node_port)
    if spec.publish_not_ready_addresses:
        doc.field("Publish Not Ready Addresses", "true")
    if kind == "LoadBalancer" or svc.status.conditions:
        _condition_table(doc, svc.status.conditions)
    _endpoint_table(doc, slices)
    return doc.render()


def _condition_table(doc: Doc, conditions: Sequence[meta_pb2.Condition]) -> None:
    """A Service's conditions in full: for a LoadBalancer the reason and message say why
    it has no address yet (pool exhausted, address taken, a privileged port...)."""
    rows = [["TYPE", "STATUS", "REASON", "MESSAGE"]]
    rows += [[c.type, c.status, c.reason or NONE, c.message or NONE] for c in conditions]
    _table(doc, "Conditions", rows)


def _table(doc: Doc, title: str, rows: list[list[str]]) -> None:
    """A titled table under a heading, or the title with <none> when it has no rows
    beyond its header."""
    if len(rows) == 1:
        doc.field(title, NONE)
        return
    doc.heading(f"{title}:")
    for line in render(rows):
        doc.heading(line, level=1)


def _condition(cond: objects_pb2.EndpointConditions, key: str) -> str:
    return str(getattr(cond, key)).lower() if cond.HasField(key) else "<unset>"


def _endpoint_table(doc: Doc, slices: Sequence[objects_pb2.EndpointSlice]) -> None:
    """Every endpoint the slices list, with its pod, node and conditions (beyond kubectl:
    this is where a lab user watches a pod fall out of Ready or off a dead node)."""
    rows = [
        ["SLICE", "POD", "ADDRESS", "NODE", "READY", "SERVING", "TERMINATING"],
    ]
    for eps in sorted(slices, key=lambda e: e.metadata.name):
        for endpoint in sorted(eps.endpoints, key=lambda e: e.target_ref.name):
            cond = endpoint.conditions
            rows.append(
                [
                    eps.metadata.name,
                    endpoint.target_ref.name or NONE,
                    ",".join(endpoint.addresses),
                    endpoint.node_name or NONE,
                    _condition(cond, "ready"),
                    _condition(cond, "serving"),
                    _condition(cond, "terminating"),
                ]
            )
    _table(doc, "EndpointSlices", rows)


def _probe(probe: objects_pb2.Probe) -> str:
    if probe.HasField("http_get"):
        action = f"http-get {probe.http_get.scheme.lower() or 'http'}://"
        action += f"{probe.http_get.host or ''}:{probe.http_get.port}{probe.http_get.path}"
    elif probe.HasField("tcp_socket"):
        action = f"tcp-socket {probe.tcp_socket.host or ''}:{probe.tcp_socket.port}"
    elif probe.HasField("exec"):
        action = "exec [" + " ".join(probe.exec.command) + "]"
    else:
        action = "unknown"
    return (
        f"{action} delay={probe.initial_delay_seconds}s timeout={probe.timeout_seconds or 1}s "
        f"period={probe.period_seconds or 10}s #success={probe.success_threshold or 1} "
        f"#failure={probe.failure_threshold or 3}"
    )


def _containers(
    doc: Doc, containers: Sequence[objects_pb2.Container], pod: objects_pb2.Pod | None, level: int
) -> None:
    """Each container under a heading at `level`, its fields one level deeper."""
    statuses = {cs.name: cs for cs in pod.status.container_statuses} if pod else {}
    for container in containers:
        doc.heading(f"{container.name}:", level=level)
        doc.field("Image", container.image or NONE, level + 1)
        if container.command:
            doc.field("Command", " ".join(container.command), level + 1)
        if container.args:
            doc.field("Args", " ".join(container.args), level + 1)
        ports = [f"{p.container_port}/{p.protocol or 'TCP'}" for p in container.ports]
        doc.field("Port", ", ".join(ports) or NONE, level + 1)
        cs = statuses.get(container.name)
        if cs is not None:
            state = cs.state
            if state.HasField("running"):
                doc.field("State", "Running", level + 1)
            elif state.HasField("waiting"):
                doc.field("State", f"Waiting ({state.waiting.reason or 'unknown'})", level + 1)
            elif state.HasField("terminated"):
                term = state.terminated
                doc.field("State", f"Terminated ({term.reason or term.exit_code})", level + 1)
            doc.field("Ready", str(cs.ready), level + 1)
            doc.field("Restart Count", cs.restart_count, level + 1)
        for key, probe in (
            ("Liveness", container.liveness_probe),
            ("Readiness", container.readiness_probe),
            ("Startup", container.startup_probe),
        ):
            if probe.ByteSize():
                doc.field(key, _probe(probe), level + 1)
        if container.env:
            doc.items("Environment", [f"{e.name}={e.value}" for e in container.env], level + 1)


def _conditions(doc: Doc, conditions: Sequence[meta_pb2.Condition]) -> None:
    if not conditions:
        return
    doc.heading("Conditions:")
    for cond in conditions:
        reason = f"  ({cond.reason})" if cond.reason else ""
        doc.field(cond.type, f"{cond.status}{reason}", 1)


def describe_pod(pod: objects_pb2.Pod) -> str:
    doc = Doc()
    _header(doc, pod.metadata, True)
    status, _, _ = pod_phase(pod)
    doc.field("Node", pod.spec.node_name or NONE)
    doc.field("Start Time", _time(pod.status.start_time))
    doc.field("Status", status)
    doc.field("IP", pod.status.pod_ip or NONE)
    if pod.status.message:
        doc.field("Message", pod.status.message)
    doc.heading("Containers:")
    _containers(doc, pod.spec.containers, pod, 1)
    _conditions(doc, pod.status.conditions)
    return doc.render()


def describe_deployment(deploy: objects_pb2.Deployment) -> str:
    spec, st = deploy.spec, deploy.status
    desired = spec.replicas if spec.HasField("replicas") else 1
    doc = Doc()
    _header(doc, deploy.metadata, True)
    doc.field("CreationTimestamp", _time(deploy.metadata.creation_timestamp))
    doc.field("Selector", format_label_selector(spec.selector))
    doc.field(
        "Replicas",
        f"{desired} desired | {st.updated_replicas} updated | {st.replicas} total | "
        f"{st.available_replicas} available | {st.unavailable_replicas} unavailable",
    )
    strategy = spec.strategy.type or "RollingUpdate"
    doc.field("StrategyType", strategy)
    doc.field("MinReadySeconds", spec.min_ready_seconds)
    if strategy == "RollingUpdate":
        rolling = spec.strategy.rolling_update
        doc.field(
            "RollingUpdateStrategy",
            f"{rolling.max_unavailable or '25%'} max unavailable, "
            f"{rolling.max_surge or '25%'} max surge",
        )
    doc.heading("Pod Template:")
    doc.items("Labels", _pairs(spec.template.metadata.labels), 1)
    doc.heading("Containers:", level=1)
    _containers(doc, spec.template.spec.containers, None, 2)
    _conditions(doc, st.conditions)
    return doc.render()


def describe_endpoint_slice(eps: objects_pb2.EndpointSlice) -> str:
    doc = Doc()
    _header(doc, eps.metadata, True)
    doc.field("AddressType", eps.address_type or NONE)
    doc.heading("Ports:")
    rows = [["Name", "Port", "Protocol"], ["----", "----", "--------"]]
    for port in eps.ports:
        number = str(port.port) if port.HasField("port") else "<unset>"
        rows.append([port.name or "<unset>", number, port.protocol or "TCP"])
    for line in render(rows):
        doc.heading(line, level=1)
    if not eps.endpoints:
        doc.heading(f"Endpoints:  {NONE}")
    else:
        doc.heading("Endpoints:")
    for endpoint in eps.endpoints:
        cond = endpoint.conditions
        doc.field("- Addresses", ",".join(endpoint.addresses), 1)
        for key in ("ready", "serving", "terminating"):
            shown = str(getattr(cond, key)).lower() if cond.HasField(key) else "<unset>"
            doc.field(f"  Conditions.{key.capitalize()}", shown, 1)
        if endpoint.hostname:
            doc.field("  Hostname", endpoint.hostname, 1)
        ref = endpoint.target_ref
        if ref.name:
            doc.field("  TargetRef", f"{ref.kind}/{ref.name}", 1)
        doc.field("  NodeName", endpoint.node_name or NONE, 1)
    return doc.render()


def describe_node(node: objects_pb2.Node) -> str:
    doc = Doc()
    _header(doc, node.metadata, False)
    doc.field("CreationTimestamp", _time(node.metadata.creation_timestamp))
    doc.field("Status", node_status(node))
    doc.field("Unschedulable", str(node.spec.unschedulable).lower())
    doc.field("PodCIDR", node.spec.pod_cidr or NONE)
    if node.spec.pod_cidrs:
        doc.field("PodCIDRs", ",".join(node.spec.pod_cidrs))
    doc.field("Last Heartbeat", _time(node.status.last_heartbeat_time))
    doc.heading("Addresses:")
    for address in node.status.addresses:
        doc.field(address.type, address.address, 1)
    _conditions(doc, node.status.conditions)
    return doc.render()


def describe_namespace(namespace: objects_pb2.Namespace) -> str:
    doc = Doc()
    _header(doc, namespace.metadata, False)
    doc.field("Status", namespace.status.phase or NONE)
    _conditions(doc, namespace.status.conditions)
    return doc.render()


async def describe_object(client: Client, info: kinds.KindInfo, obj: Message) -> str:
    if isinstance(obj, objects_pb2.Service):
        slices = await service_slices(client, obj)
        text = describe_service(obj, slices, await live_node_addresses(client))
    elif isinstance(obj, objects_pb2.Pod):
        text = describe_pod(obj)
    elif isinstance(obj, objects_pb2.Deployment):
        text = describe_deployment(obj)
    elif isinstance(obj, objects_pb2.EndpointSlice):
        text = describe_endpoint_slice(obj)
    elif isinstance(obj, objects_pb2.Node):
        text = describe_node(obj)
    elif isinstance(obj, objects_pb2.Namespace):
        return describe_namespace(obj)
    else:
        raise CliError(f"error: describing {info.resource} is not supported")
    return text + events_section(await object_events(client, obj), datetime.now(UTC))


@click.command("describe")
@click.argument("args", nargs=-1, metavar="KIND [NAME...] | KIND/NAME...")
@click.option("-l", "--selector", metavar="SELECTOR", help="Describe what this selector picks.")
@api_options
@pass_settings
def describe(settings: Settings, args: tuple[str, ...], selector: str | None) -> None:
    """Show objects in detail: kubelab describe svc shop."""
    targets = parse_targets(args, verb="describe")
    label_selector = check_selector(selector)
    if any(t.names for t in targets) and label_selector:
        raise CliError("error: name cannot be provided when a selector is specified")

    async def body(client: Client) -> int:
        texts: list[str] = []
        failures = 0
        for target in targets:
            info = target.info
            namespace = settings.namespace_for(info)
            for name in await target_names(client, target, namespace, label_selector):
                try:
                    obj = await client.get(info.resource, name, namespace)
                except ApiError as err:
                    if err.code != grpc.StatusCode.NOT_FOUND:
                        raise
                    failures += 1
                    error = from_api_error(
                        err, client.target, kind=info.kind, resource=info.resource, name=name
                    )
                    click.echo(error.message, err=True)
                    continue
                texts.append(await describe_object(client, info, obj))
        click.echo("\n".join(texts), nl=False)
        if not texts and not failures:
            click.echo("No resources found", err=True)
        return failures

    if run(body, settings):
        raise click.exceptions.Exit(1)
