"""What a node proxy serves for a Service: frontends per port, each port's endpoints,
affinity and traffic policies, which node an address is on, and where a Service answers.

Kubernetes is the reference: ClusterIP and NodePort frontends as kube-proxy
programs them, EndpointSlice ports matched by name and protocol, the EndpointSlice
condition defaults, `sessionAffinityConfig.clientIP.timeoutSeconds` defaulting to
10800, and `externalTrafficPolicy: Local` answering only where a local endpoint is.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core.endpoint_choice import Backend, Target, candidates
from kubelab.core.manifests import load_manifests
from kubelab.core.proxy_rules import (
    CLUSTER_IP,
    DEFAULT_AFFINITY_TIMEOUT,
    HEALTH_CHECK,
    NODE_PORT,
    Frontend,
    NodeAddresses,
    affinity_timeout,
    frontend_count,
    has_local_endpoint,
    health_check_frontends,
    local_ready_endpoints,
    port_backends,
    served_at,
    service_rules,
)
from kubelab.v1 import objects_pb2

VIP = "10.96.0.10"
NODE_IPS = ("192.168.0.2", "192.168.0.3")

# (name, protocol, port, nodePort)
HTTP = ("http", "TCP", 80, 30080)
DNS = ("dns", "UDP", 53, 30053)
SCTP = ("sig", "SCTP", 3868, 30868)


def service(
    type_: str = "ClusterIP",
    *,
    cluster_ip: str = VIP,
    ports: Sequence[tuple[str, str, int, int]] = (HTTP,),
    affinity: str = "",
    timeout: int | None = None,
    external: str = "",
    internal: str = "",
) -> objects_pb2.Service:
    svc = objects_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name, svc.metadata.namespace = "shop", "default"
    svc.spec.type = type_
    svc.spec.cluster_ip = cluster_ip
    svc.spec.session_affinity = affinity
    if timeout is not None:
        svc.spec.session_affinity_config.client_ip.timeout_seconds = timeout
    svc.spec.external_traffic_policy = external
    svc.spec.internal_traffic_policy = internal
    for name, protocol, port, node_port in ports:
        svc.spec.ports.add(name=name, protocol=protocol, port=port, node_port=node_port)
    return svc


@dataclass(frozen=True)
class Ep:
    """One slice endpoint; None leaves a condition unset."""

    ip: str
    node: str = "n1"
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None
    pod: str = ""


def endpoint_slice(
    endpoints: Sequence[Ep],
    ports: Sequence[tuple[str, str, int | None]] = (("http", "TCP", 8080),),
    *,
    name: str = "shop-abc",
    address_type: str = "IPv4",
) -> objects_pb2.EndpointSlice:
    eps = objects_pb2.EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice")
    eps.metadata.name, eps.metadata.namespace = name, "default"
    eps.metadata.labels["kubernetes.io/service-name"] = "shop"
    eps.address_type = address_type
    for port_name, protocol, number in ports:
        port = eps.ports.add(name=port_name, protocol=protocol)
        if number is not None:
            port.port = number
    for e in endpoints:
        endpoint = eps.endpoints.add(addresses=[e.ip], node_name=e.node)
        if e.pod:
            endpoint.target_ref.kind = "Pod"
            endpoint.target_ref.namespace = "default"
            endpoint.target_ref.name = e.pod
        for field in ("ready", "serving", "terminating"):
            value = getattr(e, field)
            if value is not None:
                setattr(endpoint.conditions, field, value)
    return eps


def backend(
    ip: str,
    port: int = 8080,
    *,
    node: str = "n1",
    ready: bool = True,
    serving: bool = True,
    terminating: bool = False,
    pod: str = "",
) -> Backend:
    return Backend(Target(ip, port), node, ready, serving, terminating, pod)


def cluster(port: int, protocol: str = "TCP") -> Frontend:
    return Frontend(protocol, VIP, port, CLUSTER_IP)


def node_port(ip: str, port: int, protocol: str = "TCP") -> Frontend:
    return Frontend(protocol, ip, port, NODE_PORT)


# ---------------------------------------------------------------- frontends


@pytest.mark.parametrize(
    ("svc", "node_ips", "expected"),
    [
        pytest.param(service(), NODE_IPS, {"http": [cluster(80)]}, id="cluster-ip"),
        pytest.param(
            service(ports=[HTTP, DNS]),
            NODE_IPS,
            {"http": [cluster(80)], "dns": [cluster(53, "UDP")]},
            id="cluster-ip-tcp-and-udp",
        ),
        pytest.param(
            service(ports=[("", "", 80, 0)]), (), {"": [cluster(80)]}, id="unset-protocol-is-tcp"
        ),
        pytest.param(
            service("NodePort"),
            NODE_IPS,
            {"http": [cluster(80), node_port(NODE_IPS[0], 30080), node_port(NODE_IPS[1], 30080)]},
            id="node-port-on-every-node-ip",
        ),
        pytest.param(
            service("LoadBalancer", ports=[DNS]),
            NODE_IPS[:1],
            {"dns": [cluster(53, "UDP"), node_port(NODE_IPS[0], 30053, "UDP")]},
            id="load-balancer-has-node-ports-udp",
        ),
        pytest.param(
            service("LoadBalancer", ports=[("http", "TCP", 80, 0)]),
            NODE_IPS,
            {"http": [cluster(80)]},
            id="load-balancer-without-node-ports",
        ),
        pytest.param(
            service("NodePort"), (), {"http": [cluster(80)]}, id="node-port-without-node-ips"
        ),
        pytest.param(
            service("ClusterIP", ports=[HTTP]),
            NODE_IPS,
            {"http": [cluster(80)]},
            id="cluster-ip-ignores-a-stale-node-port",
        ),
        pytest.param(service(cluster_ip="None"), NODE_IPS, {}, id="headless"),
        pytest.param(service(cluster_ip=""), NODE_IPS, {}, id="no-cluster-ip-yet"),
        pytest.param(service("ExternalName", cluster_ip=""), NODE_IPS, {}, id="external-name"),
        pytest.param(
            service("ExternalName", cluster_ip=VIP),
            NODE_IPS,
            {},
            id="external-name-with-stray-cluster-ip",
        ),
        pytest.param(
            service("NodePort", ports=[SCTP, HTTP]),
            NODE_IPS[:1],
            {"http": [cluster(80), node_port(NODE_IPS[0], 30080)]},
            id="sctp-skipped",
        ),
        pytest.param(service(ports=[]), NODE_IPS, {}, id="no-ports"),
    ],
)
def test_service_rules_frontends(
    svc: objects_pb2.Service, node_ips: Sequence[str], expected: dict[str, list[Frontend]]
) -> None:
    rules = service_rules(svc, [], node_ips)
    assert {r.name: list(r.frontends) for r in rules} == expected
    assert [r.name for r in rules] == list(expected)  # in the Service's port order


def test_frontend_prints_as_address_port_protocol() -> None:
    assert str(node_port("192.168.0.2", 30053, "UDP")) == "192.168.0.2:30053/UDP"


def test_service_rules_carry_each_port_and_its_policies() -> None:
    svc = service(
        "NodePort",
        ports=[HTTP, DNS],
        affinity="ClientIP",
        timeout=60,
        external="Local",
        internal="Local",
    )
    slices = [
        endpoint_slice(
            [Ep("10.244.1.5", pod="web-1"), Ep("10.244.2.6", node="n2", ready=False)],
            ports=[("http", "TCP", 8080), ("dns", "UDP", 5353)],
        )
    ]
    http, dns = service_rules(svc, slices, NODE_IPS[:1])
    assert (http.name, http.protocol, http.port, http.node_port) == ("http", "TCP", 80, 30080)
    assert (dns.name, dns.protocol, dns.port, dns.node_port) == ("dns", "UDP", 53, 30053)
    assert http.identity == ("http", "TCP")
    assert dns.identity == ("dns", "UDP")
    assert http.backends == (
        backend("10.244.1.5", 8080, pod="default/web-1"),
        backend("10.244.2.6", 8080, node="n2", ready=False, serving=True),
    )
    assert [b.target.port for b in dns.backends] == [5353, 5353]
    for rule in (http, dns):
        assert rule.affinity_timeout == 60.0
        assert rule.external_local and rule.internal_local


@pytest.mark.parametrize(
    ("external", "internal", "expected"),
    [
        pytest.param("", "", (False, False), id="unset"),
        pytest.param("Cluster", "Cluster", (False, False), id="cluster"),
        pytest.param("Local", "Cluster", (True, False), id="external-local"),
        pytest.param("Cluster", "Local", (False, True), id="internal-local"),
    ],
)
def test_traffic_policies(external: str, internal: str, expected: tuple[bool, bool]) -> None:
    (rule,) = service_rules(service("NodePort", external=external, internal=internal), [], [])
    assert (rule.external_local, rule.internal_local) == expected


@pytest.mark.parametrize(
    ("affinity", "timeout", "expected"),
    [
        pytest.param("", None, None, id="unset"),
        pytest.param("None", 60, None, id="none-ignores-timeout"),
        pytest.param("ClientIP", None, DEFAULT_AFFINITY_TIMEOUT, id="client-ip-default"),
        pytest.param("ClientIP", 0, DEFAULT_AFFINITY_TIMEOUT, id="client-ip-zero-is-default"),
        pytest.param("ClientIP", 60, 60.0, id="client-ip-timeout"),
        pytest.param("ClientIP", 86400, 86400.0, id="client-ip-max"),
    ],
)
def test_affinity_timeout(affinity: str, timeout: int | None, expected: float | None) -> None:
    svc = service(affinity=affinity, timeout=timeout)
    assert affinity_timeout(svc) == expected
    (rule,) = service_rules(svc, [], [])
    assert rule.affinity_timeout == expected


def test_default_affinity_timeout_is_three_hours() -> None:
    assert DEFAULT_AFFINITY_TIMEOUT == 10800


# ---------------------------------------------------------------- endpoints of a port


@pytest.mark.parametrize(
    ("ports", "name", "protocol", "expected"),
    [
        pytest.param([("http", "TCP", 8080)], "http", "TCP", 8080, id="name-and-protocol"),
        pytest.param(
            [("metrics", "TCP", 9090), ("http", "TCP", 8080)],
            "http",
            "TCP",
            8080,
            id="by-name",
        ),
        pytest.param(
            [("dns", "TCP", 5353), ("dns", "UDP", 5354)], "dns", "UDP", 5354, id="by-protocol"
        ),
        pytest.param([("dns", "UDP", 53)], "dns", "TCP", None, id="protocol-mismatch"),
        pytest.param([("http", "TCP", 8080)], "web", "TCP", None, id="name-mismatch"),
        pytest.param([("", "TCP", 8080)], "", "TCP", 8080, id="unnamed-port"),
        pytest.param([("http", "", 8080)], "http", "TCP", 8080, id="unset-protocol-is-tcp"),
        pytest.param([("http", "", 8080)], "http", "UDP", None, id="unset-protocol-is-not-udp"),
        pytest.param([("http", "TCP", None)], "http", "TCP", None, id="port-unset"),
        pytest.param([], "http", "TCP", None, id="no-ports"),
    ],
)
def test_port_backends_match_the_slice_port(
    ports: list[tuple[str, str, int | None]], name: str, protocol: str, expected: int | None
) -> None:
    eps = endpoint_slice([Ep("10.244.1.5")], ports=ports)
    found = port_backends([eps], name, protocol)
    assert [b.target for b in found] == (
        [] if expected is None else [Target("10.244.1.5", expected)]
    )


@pytest.mark.parametrize(
    ("address_type", "kept"),
    [
        pytest.param("IPv4", True, id="ipv4"),
        pytest.param("", True, id="unset"),
        pytest.param("IPv6", False, id="ipv6"),
        pytest.param("FQDN", False, id="fqdn"),
    ],
)
def test_port_backends_read_ipv4_slices_only(address_type: str, kept: bool) -> None:
    eps = endpoint_slice([Ep("10.244.1.5")], address_type=address_type)
    assert bool(port_backends([eps], "http", "TCP")) is kept


# (ready, serving, terminating) as written; as read.
_UNSET = None


@pytest.mark.parametrize(
    ("written", "read"),
    [
        pytest.param((_UNSET, _UNSET, _UNSET), (True, True, False), id="all-unset"),
        pytest.param((True, _UNSET, _UNSET), (True, True, False), id="ready"),
        pytest.param((False, _UNSET, _UNSET), (False, True, False), id="not-ready"),
        pytest.param((True, True, False), (True, True, False), id="ready-explicit"),
        pytest.param((False, True, True), (False, True, True), id="serving-terminating"),
        pytest.param((False, False, True), (False, False, True), id="terminating-failing"),
        pytest.param((_UNSET, False, _UNSET), (True, False, False), id="serving-false-only"),
        pytest.param((_UNSET, _UNSET, True), (True, True, True), id="terminating-only"),
        # discovery/v1 documents unset serving as true, and kube-proxy reads it so:
        # this endpoint is a serving-terminating fallback.
        pytest.param((False, _UNSET, True), (False, True, True), id="serving-unset-is-true"),
    ],
)
def test_condition_defaults(
    written: tuple[bool | None, bool | None, bool | None], read: tuple[bool, bool, bool]
) -> None:
    ready, serving, terminating = written
    eps = endpoint_slice([Ep("10.244.1.5", ready=ready, serving=serving, terminating=terminating)])
    (found,) = port_backends([eps], "http", "TCP")
    assert (found.ready, found.serving, found.terminating) == read


def test_port_backends_endpoint_fields() -> None:
    eps = endpoint_slice(
        [Ep("10.244.1.5", node="n2", pod="web-1"), Ep("10.244.1.6", node="")],
    )
    eps.endpoints[0].addresses.append("10.244.1.99")
    eps.endpoints.add(node_name="n1")  # no address: nothing to connect to
    assert port_backends([eps], "http", "TCP") == (
        backend("10.244.1.5", node="n2", pod="default/web-1"),  # the first address
        backend("10.244.1.6", node=""),
    )


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        pytest.param(
            Ep("10.244.1.5", ready=False),
            Ep("10.244.1.5", ready=True, node="n2"),
            backend("10.244.1.5", node="n2"),
            id="later-ready-copy-wins",
        ),
        pytest.param(
            Ep("10.244.1.5", ready=True),
            Ep("10.244.1.5", ready=False, node="n2"),
            backend("10.244.1.5"),
            id="earlier-ready-copy-wins",
        ),
        pytest.param(
            Ep("10.244.1.5", ready=True, pod="old"),
            Ep("10.244.1.5", ready=True, pod="new"),
            backend("10.244.1.5", pod="default/old"),
            id="both-ready-first-kept",
        ),
        pytest.param(
            Ep("10.244.1.5", ready=False, serving=True, terminating=True),
            Ep("10.244.1.5", ready=False, pod="x"),
            backend("10.244.1.5", ready=False, serving=True, terminating=True),
            id="neither-ready-first-kept",
        ),
    ],
)
def test_an_address_in_two_slices_counts_once(first: Ep, second: Ep, expected: Backend) -> None:
    slices = [endpoint_slice([first], name="a"), endpoint_slice([second], name="b")]
    assert port_backends(slices, "http", "TCP") == (expected,)


def test_same_address_on_two_target_ports_is_two_endpoints() -> None:
    """Mid-change of targetPort the pod is listed with both numbers: two targets."""
    slices = [
        endpoint_slice([Ep("10.244.1.5")], ports=[("http", "TCP", 8080)], name="a"),
        endpoint_slice([Ep("10.244.1.5")], ports=[("http", "TCP", 9090)], name="b"),
    ]
    assert [b.target for b in port_backends(slices, "http", "TCP")] == [
        Target("10.244.1.5", 8080),
        Target("10.244.1.5", 9090),
    ]


def test_port_backends_keep_slice_order() -> None:
    slices = [
        endpoint_slice([Ep("10.244.1.7"), Ep("10.244.1.3")], name="a"),
        endpoint_slice([Ep("10.244.1.9"), Ep("10.244.1.1")], name="b"),
    ]
    assert [b.target.ip for b in port_backends(slices, "http", "TCP")] == [
        "10.244.1.7",
        "10.244.1.3",
        "10.244.1.9",
        "10.244.1.1",
    ]


def test_rules_from_kubernetes_manifests() -> None:
    """The same objects as `kubectl apply` would send: targetPort an int, conditions
    partly unset, a terminating pod still serving."""
    text = textwrap.dedent(
        """
        apiVersion: v1
        kind: Service
        metadata: {name: shop, namespace: default}
        spec:
          type: NodePort
          clusterIP: 10.96.0.10
          sessionAffinity: ClientIP
          externalTrafficPolicy: Local
          ports:
          - {name: http, port: 80, targetPort: 8080, nodePort: 30080}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: shop-abc
          namespace: default
          labels: {kubernetes.io/service-name: shop}
        addressType: IPv4
        ports: [{name: http, protocol: TCP, port: 8080}]
        endpoints:
        - addresses: [10.244.1.5]
          conditions: {ready: true}
          nodeName: n1
          targetRef: {kind: Pod, namespace: default, name: shop-1}
        - addresses: [10.244.2.5]
          conditions: {ready: false, serving: true, terminating: true}
          nodeName: n2
          targetRef: {kind: Pod, namespace: default, name: shop-2}
        """
    )
    svc, eps = (loaded.object for loaded in load_manifests(text, "shop.yaml"))
    assert isinstance(svc, objects_pb2.Service)
    assert isinstance(eps, objects_pb2.EndpointSlice)
    (rule,) = service_rules(svc, [eps], ["192.168.0.2"])
    assert [str(f) for f in rule.frontends] == ["10.96.0.10:80/TCP", "192.168.0.2:30080/TCP"]
    assert rule.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT
    assert rule.external_local and not rule.internal_local
    assert rule.backends == (
        backend("10.244.1.5", pod="default/shop-1"),
        backend("10.244.2.5", node="n2", ready=False, terminating=True, pod="default/shop-2"),
    )
    assert [c.target.ip for c in candidates(rule.backends)] == ["10.244.1.5"]
    assert [c.target.ip for c in candidates(rule.backends, "n2")] == ["10.244.2.5"]


_IPS = [f"10.244.1.{n}" for n in range(1, 6)]
_MAYBE = st.none() | st.booleans()
_EPS = st.builds(
    Ep,
    ip=st.sampled_from(_IPS),
    node=st.sampled_from(["n1", "n2"]),
    ready=_MAYBE,
    serving=_MAYBE,
    terminating=_MAYBE,
)
_SLICE_PORTS = st.lists(
    st.tuples(
        st.sampled_from(["http", "dns"]),
        st.sampled_from(["TCP", "UDP", ""]),
        st.sampled_from([8080, 9090, None]),
    ),
    max_size=3,
    unique_by=lambda p: (p[0], p[1] or "TCP"),
)
_SLICES = st.lists(st.tuples(st.lists(_EPS, max_size=5), _SLICE_PORTS), max_size=4).map(
    lambda rows: [
        endpoint_slice(eps, ports, name=f"shop-{i}") for i, (eps, ports) in enumerate(rows)
    ]
)


def _read_ready(ep: objects_pb2.Endpoint) -> bool:
    return ep.conditions.ready if ep.conditions.HasField("ready") else True


@settings(max_examples=150, deadline=None)
@given(
    slices=_SLICES, name=st.sampled_from(["http", "dns"]), protocol=st.sampled_from(["TCP", "UDP"])
)
def test_port_backends_list_each_address_once_ready_if_any_copy_is(
    slices: list[objects_pb2.EndpointSlice], name: str, protocol: str
) -> None:
    found = port_backends(slices, name, protocol)
    copies: dict[Target, list[objects_pb2.Endpoint]] = {}
    for eps in slices:
        numbers = [
            p.port
            for p in eps.ports
            if p.name == name and (p.protocol or "TCP") == protocol and p.HasField("port")
        ]
        for ep in eps.endpoints:
            for number in numbers:
                copies.setdefault(Target(ep.addresses[0], number), []).append(ep)
    targets = [b.target for b in found]
    assert len(targets) == len(set(targets))
    assert set(targets) == set(copies)
    for b in found:
        listed = copies[b.target]
        # The first ready copy, else the first copy.
        winner = next((ep for ep in listed if _read_ready(ep)), listed[0])
        assert b.ready == _read_ready(winner) == any(_read_ready(ep) for ep in listed)
        assert b.node == winner.node_name
        c = winner.conditions
        assert b.serving == (c.serving if c.HasField("serving") else True)
        assert b.terminating == (c.terminating if c.HasField("terminating") else False)


# ---------------------------------------------------------------- local endpoints


@pytest.mark.parametrize(
    ("backends", "node", "expected"),
    [
        pytest.param([], "n1", False, id="none"),
        pytest.param([backend("a", node="n1")], "n1", True, id="ready-here"),
        pytest.param([backend("a", node="n2")], "n1", False, id="ready-elsewhere"),
        pytest.param(
            [backend("a", node="n1", ready=False, serving=False)], "n1", False, id="not-ready-here"
        ),
        pytest.param(
            [backend("a", node="n1", ready=False, serving=True, terminating=True)],
            "n1",
            True,
            id="serving-terminating-here",
        ),
        pytest.param(
            [backend("a", node="n1", ready=False, serving=False, terminating=True)],
            "n1",
            False,
            id="terminating-failing-here",
        ),
    ],
)
def test_has_local_endpoint(backends: list[Backend], node: str, expected: bool) -> None:
    assert has_local_endpoint(backends, node) is expected


_BACKENDS = st.lists(
    st.tuples(st.sampled_from(["n1", "n2", "n3"]), st.booleans(), st.booleans(), st.booleans()),
    max_size=6,
).map(lambda rows: [Backend(Target(f"10.244.0.{i}", 80), *row) for i, row in enumerate(rows)])


@settings(max_examples=150, deadline=None)
@given(backends=_BACKENDS, node=st.sampled_from(["n1", "n2", "n3"]))
def test_has_local_endpoint_means_a_local_candidate(backends: list[Backend], node: str) -> None:
    assert has_local_endpoint(backends, node) == bool(candidates(backends, node))


# ---------------------------------------------------------------- health check port


def with_health_port(svc: objects_pb2.Service, port: int) -> objects_pb2.Service:
    svc.spec.health_check_node_port = port
    return svc


@pytest.mark.parametrize(
    ("svc", "expected"),
    [
        pytest.param(
            with_health_port(service("LoadBalancer", external="Local"), 31000),
            tuple(Frontend("TCP", ip, 31000, HEALTH_CHECK) for ip in NODE_IPS),
            id="load-balancer-local",
        ),
        pytest.param(
            with_health_port(service("LoadBalancer", external="Cluster"), 31000),
            (),
            id="cluster-policy",
        ),
        pytest.param(service("LoadBalancer", external="Local"), (), id="not-allocated"),
        pytest.param(
            with_health_port(service("NodePort", external="Local"), 31000), (), id="node-port"
        ),
    ],
)
def test_health_check_frontends(svc: objects_pb2.Service, expected: tuple[Frontend, ...]) -> None:
    assert health_check_frontends(svc, NODE_IPS) == expected


HTTPS = ("https", "TCP", 443, 30443)
BOTH_PORTS = (("http", "TCP", 8080), ("https", "TCP", 8443))


@pytest.mark.parametrize(
    ("endpoints", "expected"),
    [
        pytest.param([], 0, id="none"),
        pytest.param([Ep("10.244.1.2")], 1, id="ready-here"),
        pytest.param([Ep("10.244.1.2", node="n2")], 0, id="ready-elsewhere"),
        pytest.param([Ep("10.244.1.2", ready=False, serving=False)], 0, id="not-ready"),
        pytest.param(
            [Ep("10.244.1.2", ready=False, serving=True, terminating=True)],
            0,
            id="serving-terminating-does-not-count",
        ),
        pytest.param(
            [Ep("10.244.1.2"), Ep("10.244.1.3"), Ep("10.244.2.2", node="n2")],
            2,
            id="two-here-one-elsewhere",
        ),
    ],
)
def test_local_ready_endpoints(endpoints: list[Ep], expected: int) -> None:
    # Both ports list every endpoint: a pod serving two ports still counts once.
    svc = with_health_port(service("LoadBalancer", ports=(HTTP, HTTPS), external="Local"), 31000)
    rules = service_rules(svc, [endpoint_slice(endpoints, BOTH_PORTS)], NODE_IPS)
    assert local_ready_endpoints(rules, "n1") == expected


def test_local_ready_endpoints_counts_a_pod_on_one_port_only() -> None:
    svc = service("LoadBalancer", ports=(HTTP, HTTPS), external="Local")
    slices = [endpoint_slice([Ep("10.244.1.2")], (("https", "TCP", 8443),))]
    assert local_ready_endpoints(service_rules(svc, slices, NODE_IPS), "n1") == 1


# ---------------------------------------------------------------- node addresses


def node(
    name: str,
    addresses: Mapping[str, str] | None = None,
    *,
    pod_cidr: str = "",
    pod_cidrs: Sequence[str] = (),
) -> objects_pb2.Node:
    n = objects_pb2.Node(api_version="v1", kind="Node")
    n.metadata.name = name
    n.spec.pod_cidr = pod_cidr
    n.spec.pod_cidrs.extend(pod_cidrs)
    for address, kind in (addresses or {}).items():
        n.status.addresses.add(type=kind, address=address)
    return n


CLUSTER_NODES = [
    node(
        "n1",
        {"192.168.0.2": "InternalIP", "203.0.113.2": "ExternalIP", "10.9.9.9": "Hostname"},
        pod_cidr="10.244.1.0/24",
        pod_cidrs=["10.244.1.0/24"],
    ),
    node("n2", {"192.168.0.3": "InternalIP"}, pod_cidr="10.244.2.0/24"),
    node("n3", {"192.168.0.4": "InternalIP"}, pod_cidrs=["10.244.3.7/24"]),
    node("n4", {"192.168.0.5": "InternalIP"}, pod_cidr="not-a-cidr"),
    node("n5", {}, pod_cidrs=["fd00:244::/64"]),
    node(
        "n6", {"192.168.0.7": "InternalIP"}, pod_cidr="10.244.1.0/24", pod_cidrs=["10.244.6.0/24"]
    ),
]


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        pytest.param("192.168.0.2", "n1", id="internal-ip"),
        pytest.param("192.168.0.3", "n2", id="another-internal-ip"),
        pytest.param("203.0.113.2", "n1", id="external-ip"),
        pytest.param("10.9.9.9", None, id="hostname-is-not-an-address"),
        pytest.param("10.244.1.17", "n1", id="pod-cidrs"),
        pytest.param("10.244.2.200", "n2", id="pod-cidr-alone"),
        pytest.param("10.244.3.1", "n3", id="cidr-with-host-bits"),
        pytest.param("10.244.6.9", "n6", id="pod-cidrs-over-pod-cidr"),
        pytest.param("10.244.9.1", None, id="no-ones-pod"),
        pytest.param("192.168.0.5", "n4", id="bad-cidr-skipped-address-kept"),
        pytest.param("fd00:244::5", None, id="ipv6"),
        pytest.param("not-an-ip", None, id="not-an-ip"),
        pytest.param("", None, id="empty"),
    ],
)
def test_node_of(ip: str, expected: str | None) -> None:
    assert NodeAddresses(CLUSTER_NODES).node_of(ip) == expected


def test_node_of_knows_nothing_without_nodes() -> None:
    assert NodeAddresses().node_of("192.168.0.2") is None


# ---------------------------------------------------------------- served at


NODES = {"n2": ["192.168.0.3"], "n1": ["192.168.0.2", "198.51.100.2"]}
LOCAL_ON_N2 = [
    endpoint_slice([Ep("10.244.1.5", node="n1", ready=False), Ep("10.244.2.5", node="n2")])
]


@pytest.mark.parametrize(
    ("svc", "slices", "expected"),
    [
        pytest.param(service(), [], {"http": ["10.96.0.10:80/TCP"]}, id="cluster-ip"),
        pytest.param(
            service(ports=[HTTP, DNS]),
            [],
            {"http": ["10.96.0.10:80/TCP"], "dns": ["10.96.0.10:53/UDP"]},
            id="two-ports",
        ),
        pytest.param(
            service("NodePort"),
            [],
            {
                "http": [
                    "10.96.0.10:80/TCP",
                    "192.168.0.2:30080/TCP",
                    "198.51.100.2:30080/TCP",
                    "192.168.0.3:30080/TCP",
                ]
            },
            id="node-port-every-node-by-name",
        ),
        pytest.param(
            service("NodePort", external="Local"),
            LOCAL_ON_N2,
            {"http": ["10.96.0.10:80/TCP", "192.168.0.3:30080/TCP"]},
            id="local-only-where-a-ready-endpoint-is",
        ),
        pytest.param(
            service("LoadBalancer", external="Local"),
            [endpoint_slice([Ep("10.244.1.5", ready=False, serving=True, terminating=True)])],
            {"http": ["10.96.0.10:80/TCP", "192.168.0.2:30080/TCP", "198.51.100.2:30080/TCP"]},
            id="local-serving-terminating-counts",
        ),
        pytest.param(
            service("LoadBalancer", external="Local"),
            [],
            {"http": ["10.96.0.10:80/TCP"]},
            id="local-without-endpoints",
        ),
        pytest.param(
            service("NodePort", external="Local"),
            [endpoint_slice([Ep("10.244.2.5", node="n2")], ports=[("web", "TCP", 8080)])],
            {"http": ["10.96.0.10:80/TCP"]},
            id="local-endpoint-of-another-port",
        ),
        pytest.param(
            service("NodePort", internal="Local"),
            [],
            {
                "http": [
                    "10.96.0.10:80/TCP",
                    "192.168.0.2:30080/TCP",
                    "198.51.100.2:30080/TCP",
                    "192.168.0.3:30080/TCP",
                ]
            },
            id="internal-local-does-not-limit-node-ports",
        ),
        pytest.param(service(cluster_ip="None"), [], {"http": []}, id="headless"),
        pytest.param(service("ExternalName", cluster_ip=""), [], {"http": []}, id="external-name"),
    ],
)
def test_served_at(
    svc: objects_pb2.Service,
    slices: list[objects_pb2.EndpointSlice],
    expected: dict[str, list[str]],
) -> None:
    assert {p.name: places for p, places in served_at(svc, slices, NODES)} == expected


def test_served_at_leaves_out_what_no_proxy_serves() -> None:
    served = served_at(service("NodePort", ports=[HTTP, SCTP]), [], NODES)
    assert not [place for _, places in served for place in places if place.endswith("/SCTP")]


_SERVICES = st.builds(
    service,
    st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]),
    cluster_ip=st.sampled_from([VIP, "None", ""]),
    ports=st.lists(
        st.sampled_from([HTTP, DNS, ("http", "TCP", 8080, 0), ("dns", "TCP", 53, 31053)]),
        max_size=3,
        unique_by=lambda p: (p[0], p[1]),
    ),
    external=st.sampled_from(["", "Cluster", "Local"]),
)
_NODE_MAP = st.dictionaries(
    st.sampled_from(["n1", "n2", "n3"]),
    st.lists(st.sampled_from(["192.168.0.2", "192.168.0.3", "203.0.113.9"]), max_size=2),
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(svc=_SERVICES, slices=_SLICES, nodes=_NODE_MAP)
def test_served_at_is_where_the_proxies_listen(
    svc: objects_pb2.Service,
    slices: list[objects_pb2.EndpointSlice],
    nodes: dict[str, list[str]],
) -> None:
    """Every node's proxy, given its addresses, listens where served_at says the
    Service answers; a Local external policy answers only where a local endpoint is."""
    expected = {r.identity: [str(f) for f in r.frontends] for r in service_rules(svc, slices, [])}
    for name in sorted(nodes):
        for rule in service_rules(svc, slices, nodes[name]):
            if rule.external_local and not has_local_endpoint(rule.backends, name):
                continue
            expected[rule.identity] += [str(f) for f in rule.frontends if f.scope == NODE_PORT]
    served = served_at(svc, slices, nodes)
    assert [port.name for port, _ in served] == [port.name for port in svc.spec.ports]
    for port, places in served:
        assert places == expected.get((port.name, port.protocol or "TCP"), [])


@given(
    st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]),
    st.sampled_from([VIP, "None", ""]),
    st.lists(st.sampled_from([HTTP, DNS, SCTP, ("web", "TCP", 8080, 0)]), unique=True),
    st.integers(min_value=0, max_value=3),
)
def test_frontend_count_is_what_the_rules_hold(
    type_: str, cluster_ip: str, ports: list[tuple[str, str, int, int]], node_ips: int
) -> None:
    """The file budget refuses a Service by this count before building its rules."""
    svc = service(type_, cluster_ip=cluster_ip, ports=ports)
    ips = [f"192.168.0.{n}" for n in range(node_ips)]
    rules = service_rules(svc, [], ips)
    assert frontend_count(svc, ips) == len({f for r in rules for f in r.frontends})
