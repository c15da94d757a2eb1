"""`kubelab get` / `describe` output: cells and layout as kubectl prints them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.cli import printers
from kubelab.cli.describe import describe_endpoint_slice, describe_pod, describe_service
from kubelab.cli.get import json_list, yaml_list
from kubelab.core import kinds, printing
from kubelab.v1 import meta_pb2, objects_pb2

NOW = datetime(2025, 1, 10, 12, 0, 0, tzinfo=UTC)


def created(seconds_ago: float) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(NOW - timedelta(seconds=seconds_ago))
    return ts


def service(
    kind: str = "ClusterIP",
    ports: tuple[tuple[int, int, str], ...] = ((80, 0, "TCP"),),
    selector: dict[str, str] | None = None,
    ingress: tuple[str, ...] = (),
    external_ips: tuple[str, ...] = (),
    cluster_ip: str = "127.96.0.12",
) -> objects_pb2.Service:
    svc = objects_pb2.Service()
    svc.metadata.name = "shop"
    svc.metadata.namespace = "default"
    svc.metadata.creation_timestamp.CopyFrom(created(65))
    svc.spec.type = kind
    svc.spec.cluster_ip = cluster_ip
    svc.spec.selector.update(selector or {})
    svc.spec.external_ips.extend(external_ips)
    for port, node_port, protocol in ports:
        svc.spec.ports.add(port=port, node_port=node_port, protocol=protocol, target_port="8080")
    for ip in ingress:
        svc.status.load_balancer.ingress.add(ip=ip)
    return svc


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(-5, "<invalid>", id="future"),
        pytest.param(-1, "0s", id="clock-skew-is-now"),
        pytest.param(0, "0s", id="zero"),
        pytest.param(5, "5s", id="seconds"),
        pytest.param(119, "119s", id="under-two-minutes-in-seconds"),
        pytest.param(120, "2m", id="two-minutes"),
        pytest.param(182, "3m2s", id="minutes-and-seconds"),
        pytest.param(600, "10m", id="ten-minutes-drops-seconds"),
        pytest.param(179 * 60, "179m", id="under-three-hours-in-minutes"),
        pytest.param(3 * 3600, "3h", id="three-hours"),
        pytest.param(4 * 3600 + 5 * 60, "4h5m", id="hours-and-minutes"),
        pytest.param(9 * 3600 + 59, "9h", id="eight-plus-hours"),
        pytest.param(47 * 3600, "47h", id="under-two-days-in-hours"),
        pytest.param(2 * 86400, "2d", id="two-days"),
        pytest.param(3 * 86400 + 4 * 3600, "3d4h", id="days-and-hours"),
        pytest.param(30 * 86400, "30d", id="a-month"),
        pytest.param(800 * 86400, "2y70d", id="years-and-days"),
        pytest.param(3000 * 86400, "8y", id="many-years"),
    ],
)
def test_format_age(seconds: float, expected: str) -> None:
    assert printing.format_age(seconds) == expected


def test_age_of_unset_timestamp_is_unknown() -> None:
    assert printing.age(Timestamp(), NOW) == "<unknown>"


@pytest.mark.parametrize(
    ("svc", "expected"),
    [
        pytest.param(
            service(),
            ["ClusterIP", "127.96.0.12", "<none>", "80/TCP", "65s", "<none>"],
            id="cluster-ip",
        ),
        pytest.param(
            service("NodePort", ((80, 30080, "TCP"),), {"env": "prod", "app": "shop"}),
            ["NodePort", "127.96.0.12", "<none>", "80:30080/TCP", "65s", "app=shop,env=prod"],
            id="node-port-selector-sorted",
        ),
        pytest.param(
            service("LoadBalancer", ((80, 31000, "TCP"), (53, 31001, "UDP"))),
            ["LoadBalancer", "127.96.0.12", "<pending>", "80:31000/TCP,53:31001/UDP", "65s"],
            id="load-balancer-pending",
        ),
        pytest.param(
            service("LoadBalancer", ((80, 31000, "TCP"),), ingress=("127.200.0.1",)),
            ["LoadBalancer", "127.96.0.12", "127.200.0.1", "80:31000/TCP", "65s"],
            id="load-balancer-ingress",
        ),
        pytest.param(
            service(external_ips=("192.0.2.1", "192.0.2.2")),
            ["ClusterIP", "127.96.0.12", "192.0.2.1,192.0.2.2", "80/TCP", "65s"],
            id="external-ips",
        ),
        pytest.param(
            service(cluster_ip="None", ports=()),
            ["ClusterIP", "None", "<none>", "<none>", "65s"],
            id="headless-no-ports",
        ),
        pytest.param(
            service(kind="", ports=((443, 0, ""),), cluster_ip=""),
            ["ClusterIP", "<none>", "<none>", "443/TCP", "65s"],
            id="defaults-when-unset",
        ),
    ],
)
def test_service_cells(svc: objects_pb2.Service, expected: list[str]) -> None:
    assert printing.service_cells(svc, NOW)[: len(expected)] == expected


def test_external_name_service_shows_its_name() -> None:
    svc = service("ExternalName", ports=(), cluster_ip="")
    svc.spec.external_name = "db.example.com"
    assert printing.service_external_ip(svc) == "db.example.com"


def pod(
    *statuses: objects_pb2.ContainerStatus,
    phase: str = "Running",
    containers: int = 1,
    deleting: bool = False,
) -> objects_pb2.Pod:
    p = objects_pb2.Pod()
    p.metadata.name = "web-1"
    p.metadata.namespace = "default"
    p.metadata.creation_timestamp.CopyFrom(created(300))
    if deleting:
        p.metadata.deletion_timestamp.CopyFrom(created(1))
    for i in range(containers):
        p.spec.containers.add(name=f"c{i}", image="python")
    p.spec.node_name = "node-1"
    p.status.phase = phase
    p.status.pod_ip = "127.244.1.5"
    p.status.container_statuses.extend(statuses)
    return p


def running(ready: bool = True, restarts: int = 0) -> objects_pb2.ContainerStatus:
    cs = objects_pb2.ContainerStatus(name="c0", ready=ready, restart_count=restarts)
    cs.state.running.started_at.CopyFrom(created(100))
    return cs


def waiting(reason: str) -> objects_pb2.ContainerStatus:
    cs = objects_pb2.ContainerStatus(name="c0")
    cs.state.waiting.reason = reason
    return cs


def terminated(
    reason: str = "", exit_code: int = 0, signal: int = 0
) -> objects_pb2.ContainerStatus:
    cs = objects_pb2.ContainerStatus(name="c0")
    cs.state.terminated.reason = reason
    cs.state.terminated.exit_code = exit_code
    cs.state.terminated.signal = signal
    return cs


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        pytest.param(pod(running()), ["1/1", "Running", "0", "5m"], id="running-ready"),
        pytest.param(pod(running(ready=False)), ["0/1", "Running", "0", "5m"], id="not-ready"),
        pytest.param(
            pod(waiting("CrashLoopBackOff")),
            ["0/1", "CrashLoopBackOff", "0", "5m"],
            id="waiting-reason",
        ),
        pytest.param(pod(terminated("Error", 1)), ["0/1", "Error", "0", "5m"], id="terminated"),
        pytest.param(pod(terminated(exit_code=3)), ["0/1", "ExitCode:3", "0", "5m"], id="exit"),
        pytest.param(pod(terminated(signal=9)), ["0/1", "Signal:9", "0", "5m"], id="signal"),
        pytest.param(pod(phase=""), ["0/1", "Pending", "0", "5m"], id="no-status-yet"),
        pytest.param(
            pod(running(), deleting=True), ["1/1", "Terminating", "0", "5m"], id="terminating"
        ),
        pytest.param(
            pod(running(), running(ready=False), containers=2),
            ["1/2", "Running", "0", "5m"],
            id="two-containers",
        ),
    ],
)
def test_pod_cells(p: objects_pb2.Pod, expected: list[str]) -> None:
    assert printing.pod_cells(p, NOW)[:4] == expected


def test_pod_restarts_say_when_and_wide_shows_ip_and_node() -> None:
    status = running(restarts=3)
    status.last_state.terminated.finished_at.CopyFrom(created(125))
    cells = printing.pod_cells(pod(status), NOW)
    assert cells[2] == "3 (2m5s ago)"
    assert cells[4:] == ["127.244.1.5", "node-1"]


def test_deployment_cells() -> None:
    d = objects_pb2.Deployment()
    d.metadata.creation_timestamp.CopyFrom(created(7200))
    d.spec.replicas = 3
    d.spec.selector.match_labels["app"] = "shop"
    d.spec.selector.match_expressions.add(key="env", operator="In", values=["prod"])
    d.spec.template.spec.containers.add(name="web", image="python:3.11")
    d.status.ready_replicas = 2
    d.status.updated_replicas = 3
    d.status.available_replicas = 2
    assert printing.deployment_cells(d, NOW) == [
        "2/3",
        "3",
        "2",
        "120m",
        "web",
        "python:3.11",
        "app=shop,env in (prod)",
    ]


def test_deployment_replicas_default_to_one() -> None:
    assert printing.deployment_cells(objects_pb2.Deployment(), NOW)[0] == "0/1"


def endpoint_slice(
    addresses: int, ports: tuple[int | None, ...] = (8080,)
) -> objects_pb2.EndpointSlice:
    eps = objects_pb2.EndpointSlice(address_type="IPv4")
    eps.metadata.creation_timestamp.CopyFrom(created(10))
    for port in ports:
        if port is None:
            eps.ports.add(name="http")
        else:
            eps.ports.add(port=port)
    for i in range(addresses):
        eps.endpoints.add(addresses=[f"127.244.1.{i + 1}"])
    return eps


@pytest.mark.parametrize(
    ("eps", "expected"),
    [
        pytest.param(endpoint_slice(0), ["IPv4", "8080", "<unset>", "10s"], id="empty"),
        pytest.param(
            endpoint_slice(3),
            ["IPv4", "8080", "127.244.1.1,127.244.1.2,127.244.1.3", "10s"],
            id="three",
        ),
        pytest.param(
            endpoint_slice(5),
            ["IPv4", "8080", "127.244.1.1,127.244.1.2,127.244.1.3 + 2 more...", "10s"],
            id="more-than-three",
        ),
        pytest.param(
            endpoint_slice(1, (80, None, 82, 83)),
            ["IPv4", "80,http,82 + 1 more...", "127.244.1.1", "10s"],
            id="ports-named-and-more",
        ),
    ],
)
def test_endpoint_slice_cells(eps: objects_pb2.EndpointSlice, expected: list[str]) -> None:
    assert printing.endpoint_slice_cells(eps, NOW) == expected


@pytest.mark.parametrize(
    ("conditions", "unschedulable", "expected"),
    [
        pytest.param([("Ready", "True")], False, "Ready", id="ready"),
        pytest.param([("Ready", "False")], False, "NotReady", id="not-ready"),
        pytest.param([("Ready", "Unknown")], False, "NotReady", id="unknown-is-not-ready"),
        pytest.param([], False, "Unknown", id="no-conditions"),
        pytest.param([("Ready", "True")], True, "Ready,SchedulingDisabled", id="cordoned"),
    ],
)
def test_node_status(conditions: list[tuple[str, str]], unschedulable: bool, expected: str) -> None:
    node = objects_pb2.Node()
    node.spec.unschedulable = unschedulable
    for kind, status in conditions:
        node.status.conditions.add(type=kind, status=status)
    assert printing.node_status(node) == expected


def test_node_cells() -> None:
    node = objects_pb2.Node()
    node.metadata.creation_timestamp.CopyFrom(created(3 * 86400))
    node.spec.pod_cidr = "127.244.1.0/24"
    node.status.addresses.add(type="Hostname", address="node-1")
    node.status.addresses.add(type="InternalIP", address="127.10.0.1")
    node.status.conditions.add(type="Ready", status="True")
    assert printing.node_cells(node, NOW) == ["Ready", "3d", "127.10.0.1", "127.244.1.0/24"]


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        pytest.param(kinds.SERVICES, "service", id="core"),
        pytest.param(kinds.DEPLOYMENTS, "deployment.apps", id="apps"),
        pytest.param(kinds.ENDPOINTSLICES, "endpointslice.discovery.k8s.io", id="discovery"),
    ],
)
def test_kind_ref(info: kinds.KindInfo, expected: str) -> None:
    assert printing.kind_ref(info) == expected


def test_table_layout_matches_kubectl() -> None:
    svc = service("NodePort", ((80, 30080, "TCP"),), {"app": "shop"})
    fmt = printers.RowFormat()
    lines = printers.render(
        [printers.header(kinds.SERVICES, fmt), printers.row(kinds.SERVICES, svc, NOW, fmt)]
    )
    assert lines == [
        "NAME   TYPE       CLUSTER-IP    EXTERNAL-IP   PORT(S)        AGE",
        "shop   NodePort   127.96.0.12   <none>        80:30080/TCP   65s",
    ]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        pytest.param(
            printers.RowFormat(wide=True),
            ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"],
            id="wide-adds-selector",
        ),
        pytest.param(
            printers.RowFormat(namespaces=True),
            ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
            id="all-namespaces",
        ),
    ],
)
def test_headers(fmt: printers.RowFormat, expected: list[str]) -> None:
    assert printers.header(kinds.SERVICES, fmt) == expected
    assert len(printers.row(kinds.SERVICES, service(), NOW, fmt)) == len(expected)


def test_kind_prefix_names_rows() -> None:
    fmt = printers.RowFormat(kind_prefix="service/")
    assert printers.row(kinds.SERVICES, service(), NOW, fmt)[0] == "service/shop"


def test_every_kind_has_a_table_whose_cells_fit_its_columns() -> None:
    for info in kinds.ALL_KINDS:
        table = printers.TABLES[info.kind]
        cells = table.cells(info.message(), NOW)
        assert len(cells) == len(table.columns) + len(table.wide), info.kind


def test_render_pads_to_minimum_width_and_leaves_last_column() -> None:
    assert printers.render([["A", "B", "C"], ["x", "yy", "z"]]) == [
        "A     B     C",
        "x     yy    z",
    ]


# ---------------------------------------------------------------- describe


def slice_for(svc_name: str, ready: list[str], not_ready: list[str]) -> objects_pb2.EndpointSlice:
    eps = objects_pb2.EndpointSlice(address_type="IPv4")
    eps.metadata.name = f"{svc_name}-abc"
    eps.metadata.namespace = "default"
    eps.metadata.labels["kubernetes.io/service-name"] = svc_name
    eps.ports.add(name="http", port=8080, protocol="TCP")
    for address in ready:
        eps.endpoints.add(addresses=[address]).conditions.ready = True
    for address in not_ready:
        eps.endpoints.add(addresses=[address]).conditions.ready = False
    return eps


def test_describe_service() -> None:
    svc = service("NodePort", (), {"env": "prod", "app": "shop"})
    svc.metadata.labels.update({"team": "web", "tier": "front"})
    svc.spec.ports.add(name="http", port=80, target_port="8080", node_port=30080, protocol="TCP")
    svc.spec.session_affinity = "None"
    svc.spec.external_traffic_policy = "Cluster"
    text = describe_service(
        svc, [slice_for("shop", ["127.244.1.5", "127.244.2.3"], ["127.244.3.9"])]
    )
    assert text.splitlines() == [
        "Name:                     shop",
        "Namespace:                default",
        "Labels:                   team=web",
        "                          tier=front",
        "Annotations:              <none>",
        "Selector:                 app=shop,env=prod",
        "Type:                     NodePort",
        "IP:                       127.96.0.12",
        "Port:                     http  80/TCP",
        "TargetPort:               8080/TCP",
        "NodePort:                 http  30080/TCP",
        "Endpoints:                127.244.1.5:8080,127.244.2.3:8080",
        "Session Affinity:         None",
        "External Traffic Policy:  Cluster",
        "EndpointSlices:",
        "  SLICE      POD      ADDRESS       NODE     READY   SERVING   TERMINATING",
        "  shop-abc   <none>   127.244.1.5   <none>   true    <unset>   <unset>",
        "  shop-abc   <none>   127.244.2.3   <none>   true    <unset>   <unset>",
        "  shop-abc   <none>   127.244.3.9   <none>   false   <unset>   <unset>",
    ]


def test_describe_load_balancer_pending_and_no_endpoints() -> None:
    svc = service("LoadBalancer", ((80, 31000, "TCP"),))
    lines = describe_service(svc, []).splitlines()
    assert any(line.startswith("LoadBalancer Ingress:") and "<pending>" in line for line in lines)
    assert any(line.startswith("Endpoints:") and line.endswith("<none>") for line in lines)


def test_describe_load_balancer_shows_why_it_is_pending() -> None:
    svc = service("LoadBalancer", ((80, 31000, "TCP"),))
    assert "Conditions:               <none>" in describe_service(svc, []).splitlines()
    svc.status.conditions.add(
        type="LoadBalancerProvisioned",
        status="False",
        reason="PoolExhausted",
        message="no free address in pool 127.200.0.0/30",
    )
    lines = describe_service(svc, []).splitlines()
    at = lines.index("Conditions:")
    assert lines[at + 1 : at + 3] == [
        "  TYPE                      STATUS   REASON          MESSAGE",
        "  LoadBalancerProvisioned   False    PoolExhausted   no free address in pool "
        "127.200.0.0/30",
    ]
    plain = service("ClusterIP", ((80, 0, "TCP"),))
    assert not any(
        line.startswith("Conditions") for line in describe_service(plain, []).splitlines()
    )


def test_describe_pod_names_its_containers_and_conditions() -> None:
    p = pod(running())
    p.status.conditions.add(type="Ready", status="True")
    probe = p.spec.containers[0].readiness_probe
    probe.http_get.path = "/healthz"
    probe.http_get.port = "8080"
    text = describe_pod(p)
    assert "Status:" in text and "Running" in text
    assert "  c0:" in text
    assert "http-get http://:8080/healthz" in text
    assert "Ready" in text.split("Conditions:")[1]


def test_describe_endpoint_slice_shows_conditions() -> None:
    eps = slice_for("shop", ["127.244.1.5"], [])
    eps.endpoints[0].node_name = "node-1"
    eps.endpoints[0].target_ref.CopyFrom(meta_pb2.ObjectReference(kind="Pod", name="web-1"))
    text = describe_endpoint_slice(eps)
    assert "127.244.1.5" in text
    assert "Conditions.Ready" in text and "true" in text
    assert "Pod/web-1" in text and "node-1" in text


def test_a_row_wider_than_the_table_keeps_its_gaps() -> None:
    widths = printers.column_widths([["NAME", "TYPE", "AGE"], ["shop", "NodePort", "1s"]])
    assert printers.render_row(["good", "ClusterIP", "0s"], widths) == "good   ClusterIP   0s"


@pytest.mark.parametrize("count", [pytest.param(0, id="empty"), pytest.param(2, id="two")])
def test_lists_read_back_as_kubernetes_lists(count: int) -> None:
    objects = []
    for i in range(count):
        svc = service()
        svc.metadata.name = f"svc-{i}"
        svc.metadata.annotations["note"] = "line one\nline two"
        objects.append(svc)
    for text in (yaml_list(objects), json_list(objects)):
        doc = yaml.safe_load(text)
        assert doc["apiVersion"] == "v1" and doc["kind"] == "List"
        assert doc["metadata"] == {"resourceVersion": ""}
        assert [item["metadata"]["name"] for item in doc["items"]] == [
            f"svc-{i}" for i in range(count)
        ]
        assert all(item["kind"] == "Service" for item in doc["items"])
        assert all(
            item["metadata"]["annotations"]["note"] == "line one\nline two" for item in doc["items"]
        )
