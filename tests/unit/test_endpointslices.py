"""The EndpointSlice reconcile: which pods are listed, how, in which slices, with how many writes.

`Cluster` stands in for the apiserver: it applies a plan the way the controller
does (creates get a uid and resourceVersion, updates compare-and-swap on the
resourceVersion, every written slice must pass validation) and counts writes.
The hypothesis tests check the reconcile against a model of its own: which pod
is selected, its conditions and its ports are computed here again, simply.
"""

from __future__ import annotations

import random
import re
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core.endpointslices import (
    HEADLESS_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    SlicePlan,
    is_managed,
    reconcile_slices,
    slice_labels,
)
from kubelab.core.names import SAFE_ALPHABET
from kubelab.core.slice_endpoints import PortSpec, desired_endpoints, endpoint_ports
from kubelab.core.validation.cluster import validate_endpoint_slice
from kubelab.testing.pods import make_pod, set_ready
from kubelab.v1 import meta_pb2, objects_pb2

NS = "default"
SVC_UID = "uid-shop"
SHOP = {"env": "prod", "app": "shop"}
Slice = objects_pb2.EndpointSlice
# (name, protocol, port, targetPort)
HTTP = ("http", "TCP", 80, "http")


def service(
    *,
    name: str = "shop",
    selector: Mapping[str, str] | None = None,
    ports: Sequence[tuple[str, str, int, str]] = (HTTP,),
    publish: bool = False,
    cluster_ip: str = "10.96.0.10",
    labels: Mapping[str, str] | None = None,
    type_: str = "ClusterIP",
) -> objects_pb2.Service:
    svc = objects_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name = name
    svc.metadata.namespace = NS
    svc.metadata.uid = SVC_UID
    svc.metadata.labels.update(labels or {})
    svc.spec.type = type_
    svc.spec.selector.update(SHOP if selector is None else selector)
    svc.spec.cluster_ip = cluster_ip
    svc.spec.publish_not_ready_addresses = publish
    for port_name, protocol, port, target in ports:
        svc.spec.ports.add(name=port_name, protocol=protocol, port=port, target_port=target)
    return svc


def ip_of(name: str) -> str:
    n = zlib.crc32(name.encode())
    return f"10.{n % 250 + 1}.{n // 250 % 250}.{n // 62500 % 250 + 1}"


def pod(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    ip: str | None = "",
    ready: bool = True,
    terminating: bool = False,
    phase: str = "Running",
    node: str = "n1",
    ports: Mapping[str, int | tuple[int, str]] | None = None,
    namespace: str = NS,
    hostname: str = "",
    subdomain: str = "",
) -> objects_pb2.Pod:
    """A pod with its status merged in; `ip=""` derives one from the name, None has no status."""
    p = make_pod(
        name,
        namespace=namespace,
        node=node,
        labels=SHOP if labels is None else labels,
        phase=phase,
        deleted=5.0 if terminating else None,
    )
    p.metadata.uid = f"uid-{name}"
    p.spec.hostname, p.spec.subdomain = hostname, subdomain
    container = p.spec.containers.add(name="app", image="echo")
    for port_name, spec in ({"http": 8080} if ports is None else ports).items():
        number, protocol = spec if isinstance(spec, tuple) else (spec, "TCP")
        container.ports.add(name=port_name, container_port=number, protocol=protocol)
    if ip is None:
        p.ClearField("status")
    else:
        p.status.pod_ip = ip or ip_of(name)
        set_ready(p, ready, 1.0)
    return p


def plan(
    svc: objects_pb2.Service,
    pods: Sequence[objects_pb2.Pod],
    existing: Sequence[Slice] = (),
    *,
    max_endpoints: int = 100,
    seed: int = 1,
) -> SlicePlan:
    return reconcile_slices(
        svc, pods, existing, max_endpoints=max_endpoints, rng=random.Random(seed)
    )


# ---------------------------------------------------------------- the little apiserver


@dataclass
class Cluster:
    """Slices as the store holds them, written only through plans."""

    slices: dict[str, Slice] = field(default_factory=dict)
    revision: int = 100
    writes: int = 0

    def _stamp(self, eps: Slice) -> Slice:
        assert validate_endpoint_slice(eps) == [], validate_endpoint_slice(eps)
        self.revision += 1
        stored = Slice()
        stored.CopyFrom(eps)
        stored.metadata.resource_version = str(self.revision)
        return stored

    def apply(self, step: SlicePlan) -> None:
        for name in step.delete:
            del self.slices[name]
        for eps in step.update:
            old = self.slices[eps.metadata.name]
            assert eps.metadata.resource_version == old.metadata.resource_version  # CAS
            assert eps.metadata.uid == old.metadata.uid
            self.slices[eps.metadata.name] = self._stamp(eps)
        for eps in step.create:
            assert eps.metadata.name not in self.slices
            assert not eps.metadata.resource_version
            stored = self._stamp(eps)
            stored.metadata.uid = f"uid-{eps.metadata.name}"
            self.slices[eps.metadata.name] = stored
        self.writes += len(step.create) + len(step.update) + len(step.delete)

    def sync(
        self,
        svc: objects_pb2.Service,
        pods: Sequence[objects_pb2.Pod],
        *,
        max_endpoints: int = 100,
        seed: int = 1,
    ) -> SlicePlan:
        """Reconcile once, apply, and check that a second reconcile has nothing to do."""
        step = plan(svc, pods, self.existing(), max_endpoints=max_endpoints, seed=seed)
        self.apply(step)
        again = plan(svc, pods, self.existing(), max_endpoints=max_endpoints, seed=seed + 1)
        assert again.empty, again
        return step

    def existing(self) -> list[Slice]:
        return list(self.slices.values())

    def listed(self) -> Counter[str]:
        return Counter(ep.target_ref.name for eps in self.slices.values() for ep in eps.endpoints)

    def endpoint(self, pod_name: str) -> objects_pb2.Endpoint:
        (found,) = (
            ep
            for eps in self.slices.values()
            for ep in eps.endpoints
            if ep.target_ref.name == pod_name
        )
        return found

    def holder(self) -> dict[str, str]:
        """Pod name -> the name of the slice listing it."""
        return {
            ep.target_ref.name: name for name, eps in self.slices.items() for ep in eps.endpoints
        }

    def ports(self, pod_name: str) -> set[PortSpec]:
        return {
            PortSpec.from_proto(port)
            for eps in self.slices.values()
            if any(ep.target_ref.name == pod_name for ep in eps.endpoints)
            for port in eps.ports
        }


def writes(step: SlicePlan) -> int:
    return len(step.create) + len(step.update) + len(step.delete)


def conditions(ep: objects_pb2.Endpoint) -> tuple[bool, bool, bool]:
    c = ep.conditions
    return (c.ready, c.serving, c.terminating)


# ---------------------------------------------------------------- the seed's example


def test_seed_example_lists_prod_shop_pods_even_with_extra_labels() -> None:
    pods = [pod(f"shop-{i}") for i in range(4)]
    pods.append(pod("shop-dev", labels={"env": "dev", "app": "shop"}))
    pods.append(pod("shop-usd", labels={**SHOP, "cur": "usd"}))
    cluster = Cluster()
    step = cluster.sync(service(), pods)
    assert (len(step.create), step.update, step.delete) == (1, (), ())
    assert cluster.listed() == Counter({f"shop-{i}": 1 for i in range(4)} | {"shop-usd": 1})
    (eps,) = step.create
    assert [ep.target_ref.name for ep in eps.endpoints] == sorted(cluster.listed())
    assert [PortSpec.from_proto(p) for p in eps.ports] == [PortSpec("http", "TCP", 8080)]


def test_new_slices_are_fully_formed() -> None:
    svc = service(labels={"team": "web"})
    (eps,) = plan(svc, [pod("shop-0", hostname="h", subdomain="other")]).create
    assert re.fullmatch(f"shop-[{SAFE_ALPHABET}]{{5}}", eps.metadata.name)
    assert eps.metadata.generate_name == "shop-"
    assert (eps.api_version, eps.kind) == ("discovery.k8s.io/v1", "EndpointSlice")
    assert (eps.metadata.namespace, eps.address_type) == (NS, "IPv4")
    assert dict(eps.metadata.labels) == {
        "team": "web",
        SERVICE_NAME_LABEL: "shop",
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    assert list(eps.metadata.owner_references) == [
        meta_pb2.OwnerReference(
            api_version="v1",
            kind="Service",
            name="shop",
            uid=SVC_UID,
            controller=True,
            block_owner_deletion=True,
        )
    ]
    (ep,) = eps.endpoints
    expected = objects_pb2.Endpoint(addresses=[ip_of("shop-0")], node_name="n1")
    expected.conditions.ready = expected.conditions.serving = True
    expected.conditions.terminating = False
    expected.target_ref.CopyFrom(
        meta_pb2.ObjectReference(kind="Pod", namespace=NS, name="shop-0", uid="uid-shop-0")
    )
    assert ep == expected
    assert is_managed(eps, "shop") and not is_managed(eps, "other")


def test_slice_labels_copy_the_services_and_ours_win() -> None:
    svc = service(labels={SERVICE_NAME_LABEL: "evil", MANAGED_BY_LABEL: "me", "a": "b"})
    assert slice_labels(svc) == {
        "a": "b",
        SERVICE_NAME_LABEL: "shop",
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    assert slice_labels(service(cluster_ip="None"))[HEADLESS_LABEL] == ""


def test_long_service_names_are_cut_like_generate_name() -> None:
    (eps,) = plan(service(name="s" * 63), [pod("p")]).create
    assert len(eps.metadata.name) == 63 and eps.metadata.generate_name == "s" * 58


def test_new_names_avoid_every_existing_name() -> None:
    (first,) = plan(service(), [pod("p")], seed=3).create
    foreign = Slice(address_type="IPv4")
    foreign.metadata.name, foreign.metadata.namespace = first.metadata.name, NS
    (second,) = plan(service(), [pod("p")], [foreign], seed=3).create
    assert second.metadata.name != first.metadata.name


def test_contents_do_not_depend_on_pod_order() -> None:
    pods = [pod(f"p{i}", ports={"http": 8080 + i % 2}) for i in range(30)]
    forward = plan(service(), pods, max_endpoints=7)
    backward = plan(service(), pods[::-1], max_endpoints=7)
    assert forward == backward


# ---------------------------------------------------------------- which pods


@pytest.mark.parametrize(
    ("the_pod", "listed"),
    [
        pytest.param(pod("p"), True, id="matching"),
        pytest.param(pod("p", labels={**SHOP, "cur": "usd"}), True, id="extra-labels"),
        pytest.param(pod("p", labels={"app": "shop"}), False, id="missing-label"),
        pytest.param(pod("p", labels={"env": "dev", "app": "shop"}), False, id="other-value"),
        pytest.param(pod("p", namespace="other"), False, id="other-namespace"),
        pytest.param(pod("p", ip=None), False, id="no-status-node-died"),
        pytest.param(pod("p", phase="Pending", ready=False), True, id="pending-with-ip"),
        pytest.param(pod("p", phase="Succeeded"), False, id="succeeded"),
        pytest.param(pod("p", phase="Failed"), False, id="failed"),
        pytest.param(pod("p", ip="fd00::1"), False, id="ipv6-not-in-ipv4-slices"),
        pytest.param(pod("p", terminating=True), True, id="terminating"),
        pytest.param(pod("p", ready=False), True, id="not-ready"),
    ],
)
def test_which_pods_are_listed(the_pod: objects_pb2.Pod, listed: bool) -> None:
    cluster = Cluster()
    cluster.sync(service(), [the_pod])
    assert cluster.listed() == (Counter({"p": 1}) if listed else Counter())


@pytest.mark.parametrize(
    ("ready", "terminating", "publish", "expected"),
    [
        pytest.param(True, False, False, (True, True, False), id="ready"),
        pytest.param(False, False, False, (False, False, False), id="not-ready"),
        pytest.param(True, True, False, (False, True, True), id="terminating-ready"),
        pytest.param(False, True, False, (False, False, True), id="terminating-not-ready"),
        pytest.param(False, False, True, (True, True, False), id="publish-not-ready"),
        pytest.param(True, True, True, (True, True, True), id="publish-terminating"),
        pytest.param(False, True, True, (True, True, True), id="publish-terminating-not-ready"),
    ],
)
def test_endpoint_conditions(
    ready: bool, terminating: bool, publish: bool, expected: tuple[bool, bool, bool]
) -> None:
    cluster = Cluster()
    cluster.sync(service(publish=publish), [pod("p", ready=ready, terminating=terminating)])
    ep = cluster.endpoint("p")
    assert all(ep.conditions.HasField(f) for f in ("ready", "serving", "terminating"))
    assert conditions(ep) == expected


@pytest.mark.parametrize(
    ("hostname", "subdomain", "expected"),
    [
        pytest.param("web-0", "shop", "web-0", id="subdomain-is-service"),
        pytest.param("web-0", "other", "", id="other-subdomain"),
        pytest.param("", "shop", "", id="no-hostname"),
    ],
)
def test_hostname_only_for_the_pods_subdomain(hostname: str, subdomain: str, expected: str) -> None:
    svc = service(cluster_ip="None")
    cluster = Cluster()
    cluster.sync(svc, [pod("p", hostname=hostname, subdomain=subdomain)])
    assert cluster.endpoint("p").hostname == expected


# ---------------------------------------------------------------- ports


@pytest.mark.parametrize(
    ("port", "pod_ports", "expected"),
    [
        pytest.param(("", "TCP", 80, "8080"), {}, 8080, id="number"),
        pytest.param(("", "TCP", 80, ""), {}, 80, id="unset-is-port"),
        pytest.param(("", "TCP", 80, "0"), {}, 80, id="zero-is-port"),
        pytest.param(HTTP, {"http": 8080}, 8080, id="name"),
        pytest.param(HTTP, {"web": 8080}, None, id="name-missing"),
        pytest.param(HTTP, {"http": (8080, "UDP")}, None, id="name-other-protocol"),
        pytest.param(("dns", "UDP", 53, "dns"), {"dns": (5353, "UDP")}, 5353, id="udp-name"),
    ],
)
def test_target_port_resolution(
    port: tuple[str, str, int, str], pod_ports: Mapping[str, int | tuple[int, str]], expected: int
) -> None:
    resolved = endpoint_ports(service(ports=[port]), pod("p", ports=pod_ports))
    assert [p.port for p in resolved] == ([] if expected is None else [expected])


def test_named_target_port_resolving_differently_gives_two_slices() -> None:
    pods = [pod("a1"), pod("a2"), pod("b1", ports={"http": 9090})]
    cluster = Cluster()
    step = cluster.sync(service(), pods)
    assert len(step.create) == 2
    assert cluster.ports("a1") == cluster.ports("a2") == {PortSpec("http", "TCP", 8080)}
    assert cluster.ports("b1") == {PortSpec("http", "TCP", 9090)}
    assert cluster.holder()["a1"] == cluster.holder()["a2"] != cluster.holder()["b1"]


def test_a_port_the_pod_lacks_is_left_out_for_that_pod() -> None:
    svc = service(ports=[HTTP, ("metrics", "TCP", 9100, "9100")])
    pods = [pod("full"), pod("bare", ports={})]
    groups = desired_endpoints(svc, pods)
    assert {ports: [ep.target_ref.name for ep in eps] for ports, eps in groups.items()} == {
        (PortSpec("http", "TCP", 8080), PortSpec("metrics", "TCP", 9100)): ["full"],
        (PortSpec("metrics", "TCP", 9100),): ["bare"],
    }
    only_named = service(ports=[HTTP])
    cluster = Cluster()
    cluster.sync(only_named, [pod("bare", ports={})])
    assert cluster.listed() == Counter({"bare": 1}) and cluster.ports("bare") == set()


def test_app_protocol_is_carried() -> None:
    svc = service()
    svc.spec.ports[0].app_protocol = "http"
    (eps,) = plan(svc, [pod("p")]).create
    assert eps.ports[0].app_protocol == "http"


def test_target_port_change_rewrites_the_slice_in_place() -> None:
    cluster = Cluster()
    cluster.sync(service(), [pod("p")])
    (name,) = cluster.slices
    step = cluster.sync(service(ports=[("http", "TCP", 80, "9000")]), [pod("p")])
    assert (step.create, step.delete, [s.metadata.name for s in step.update]) == ((), (), [name])
    assert cluster.ports("p") == {PortSpec("http", "TCP", 9000)}


# ---------------------------------------------------------------- packing


def test_250_pods_make_three_slices() -> None:
    cluster = Cluster()
    step = cluster.sync(service(), [pod(f"p{i:03}") for i in range(250)])
    assert sorted(len(eps.endpoints) for eps in step.create) == [50, 100, 100]
    assert sum(cluster.listed().values()) == 250 and set(cluster.listed().values()) == {1}


def test_a_new_pod_goes_to_the_fullest_slice_with_room() -> None:
    cluster = Cluster()
    cluster.sync(service(), [pod(f"p{i}") for i in range(7)], max_endpoints=3)
    assert sorted(len(eps.endpoints) for eps in cluster.existing()) == [1, 3, 3]
    cluster.sync(service(), [pod(f"p{i}") for i in range(1, 7)], max_endpoints=3)
    holder = cluster.holder()
    sizes = {name: len(eps.endpoints) for name, eps in cluster.slices.items()}
    assert sorted(sizes.values()) == [1, 2, 3]
    step = cluster.sync(service(), [pod(f"p{i}") for i in range(1, 8)], max_endpoints=3)
    ((updated,),) = (step.update,)
    assert (step.create, step.delete, sizes[updated.metadata.name]) == ((), (), 2)
    assert {k: v for k, v in cluster.holder().items() if k != "p7"} == holder


def test_a_new_pod_when_all_slices_are_full_gets_a_new_slice() -> None:
    cluster = Cluster()
    cluster.sync(service(), [pod(f"p{i}") for i in range(4)], max_endpoints=2)
    step = cluster.sync(service(), [pod(f"p{i}") for i in range(5)], max_endpoints=2)
    assert (len(step.create), step.update, step.delete) == (1, (), ())


def test_unchanged_world_and_restart_write_nothing() -> None:
    pods = [pod(f"p{i}", ready=i % 3 > 0, ports={"http": 8080 + i % 2}) for i in range(40)]
    cluster = Cluster()
    cluster.sync(service(), pods, max_endpoints=8)
    # A fresh process: other rng, pods listed in another order, slices stored reordered.
    shuffled = []
    for eps in cluster.existing():
        copy = Slice()
        copy.CopyFrom(eps)
        copy.endpoints.reverse()
        copy.ports.reverse()
        shuffled.append(copy)
    assert plan(service(), pods[::-1], shuffled[::-1], max_endpoints=8, seed=99).empty


def test_a_duplicated_endpoint_is_dropped_from_one_slice() -> None:
    cluster = Cluster()
    cluster.sync(service(), [pod(f"p{i}") for i in range(4)], max_endpoints=2)
    first, second = sorted(cluster.slices)
    cluster.slices[second].endpoints.append(cluster.slices[first].endpoints[0])
    step = cluster.sync(service(), [pod(f"p{i}") for i in range(4)], max_endpoints=2)
    assert [s.metadata.name for s in step.update] == [second]
    assert set(cluster.listed().values()) == {1}


def test_a_stray_empty_slice_is_deleted() -> None:
    cluster = Cluster()
    cluster.sync(service(), [pod("p0"), pod("p1")], max_endpoints=2)
    (full,) = cluster.existing()
    stray = Slice()
    stray.CopyFrom(full)
    stray.metadata.name = "shop-stray"
    del stray.endpoints[:]
    cluster.slices["shop-stray"] = stray
    step = cluster.sync(service(), [pod("p0"), pod("p1")], max_endpoints=2)
    assert (step.create, step.update, step.delete) == ((), (), ("shop-stray",))


def test_slices_of_another_address_type_are_deleted() -> None:
    cluster = Cluster()
    cluster.sync(service(), [pod("p")])
    (eps,) = cluster.existing()
    eps.address_type = "IPv6"
    del eps.endpoints[:]
    step = plan(service(), [pod("p")], [eps])
    assert (len(step.create), step.update, step.delete) == (1, (), (eps.metadata.name,))


# ---------------------------------------------------------------- changes


def test_relabel_out_and_back_in_updates_one_slice() -> None:
    pods = [pod(f"p{i}") for i in range(5)]
    cluster = Cluster()
    cluster.sync(service(), pods, max_endpoints=2)
    holder = cluster.holder()
    pods[2] = pod("p2", labels={"env": "dev", "app": "shop"})
    step = cluster.sync(service(), pods, max_endpoints=2)
    assert [s.metadata.name for s in step.update] == [holder["p2"]]
    assert (step.create, step.delete) == ((), ()) and "p2" not in cluster.listed()
    pods[2] = pod("p2")
    step = cluster.sync(service(), pods, max_endpoints=2)
    assert writes(step) == 1 and cluster.listed()["p2"] == 1


def test_readiness_flip_updates_only_the_slice_holding_the_pod() -> None:
    pods = [pod(f"p{i:03}") for i in range(250)]
    cluster = Cluster()
    cluster.sync(service(), pods)
    holder = cluster.holder()
    pods[123] = pod("p123", ready=False)
    step = cluster.sync(service(), pods)
    assert [s.metadata.name for s in step.update] == [holder["p123"]]
    assert (step.create, step.delete) == ((), ())
    assert conditions(cluster.endpoint("p123")) == (False, False, False)
    assert cluster.holder() == holder


def test_an_added_pod_fills_the_slice_a_removal_rewrites_anyway() -> None:
    cluster = Cluster()
    cluster.sync(service(), [pod(f"p{i}") for i in range(4)], max_endpoints=2)
    holder = cluster.holder()
    pods = [pod(f"p{i}") for i in (0, 2, 3, 4)]
    step = cluster.sync(service(), pods, max_endpoints=2)
    assert [s.metadata.name for s in step.update] == [holder["p1"]] and writes(step) == 1
    assert cluster.holder()["p4"] == holder["p1"]


def test_a_new_pod_ip_is_updated_where_the_pod_is() -> None:
    pods = [pod(f"p{i}") for i in range(4)]
    cluster = Cluster()
    cluster.sync(service(), pods, max_endpoints=2)
    holder = cluster.holder()
    pods[3] = pod("p3", ip="10.9.9.9")
    step = cluster.sync(service(), pods, max_endpoints=2)
    assert [s.metadata.name for s in step.update] == [holder["p3"]]
    assert list(cluster.endpoint("p3").addresses) == ["10.9.9.9"]


def test_a_slice_left_empty_is_deleted() -> None:
    pods = [pod(f"p{i}") for i in range(3)]
    cluster = Cluster()
    cluster.sync(service(), pods, max_endpoints=2)
    holder = cluster.holder()
    step = cluster.sync(service(), pods[:2], max_endpoints=2)
    assert (step.create, step.update, step.delete) == ((), (), (holder["p2"],))


def test_service_labels_change_updates_every_slice() -> None:
    pods = [pod(f"p{i}") for i in range(3)]
    cluster = Cluster()
    cluster.sync(service(), pods, max_endpoints=2)
    step = cluster.sync(service(labels={"team": "web"}), pods, max_endpoints=2)
    assert len(step.update) == 2 and (step.create, step.delete) == ((), ())
    assert all(eps.metadata.labels["team"] == "web" for eps in cluster.existing())


# ---------------------------------------------------------------- placeholder


def test_placeholder_lifecycle() -> None:
    cluster = Cluster()
    step = cluster.sync(service(), [])
    ((placeholder,),) = (step.create,)
    assert (list(placeholder.endpoints), list(placeholder.ports)) == ([], [])
    name = placeholder.metadata.name
    # The first pod turns the placeholder into a real slice: one update, same name.
    step = cluster.sync(service(), [pod("p")])
    assert ([s.metadata.name for s in step.update], step.create, step.delete) == ([name], (), ())
    # The last pod gone: back to a placeholder, still one write.
    step = cluster.sync(service(), [pod("p", ip=None)])
    assert ([s.metadata.name for s in step.update], step.create, step.delete) == ([name], (), ())
    assert list(cluster.slices[name].ports) == []
    # Service labels changed: the placeholder is updated, not replaced.
    step = cluster.sync(service(labels={"a": "b"}), [])
    assert ([s.metadata.name for s in step.update], step.create, step.delete) == ([name], (), ())


def test_many_slices_emptied_keep_one_as_placeholder() -> None:
    cluster = Cluster()
    cluster.sync(service(), [pod(f"p{i}") for i in range(6)], max_endpoints=2)
    names = sorted(cluster.slices)
    step = cluster.sync(service(), [])
    assert (len(step.update), step.create, len(step.delete)) == (1, (), 2)
    assert sorted([step.update[0].metadata.name, *step.delete]) == names


def test_pods_without_ports_fill_the_placeholder() -> None:
    cluster = Cluster()
    (name,) = (s.metadata.name for s in cluster.sync(service(), []).create)
    step = cluster.sync(service(), [pod("bare", ports={})])
    assert [s.metadata.name for s in step.update] == [name] and writes(step) == 1


# ---------------------------------------------------------------- what is not ours


def foreign_slice(name: str, labels: Mapping[str, str], *, namespace: str = NS) -> Slice:
    eps = Slice(address_type="IPv4")
    eps.metadata.name, eps.metadata.namespace = name, namespace
    eps.metadata.labels.update(labels)
    eps.endpoints.add(addresses=["10.0.0.1"])
    return eps


OURS = {SERVICE_NAME_LABEL: "shop", MANAGED_BY_LABEL: MANAGED_BY}


@pytest.mark.parametrize(
    "svc",
    [
        pytest.param(service(selector={}), id="no-selector"),
        pytest.param(service(type_="ExternalName"), id="external-name"),
    ],
)
def test_services_whose_slices_are_not_ours(svc: objects_pb2.Service) -> None:
    existing = [foreign_slice("shop-user", OURS)]
    assert plan(svc, [pod("p")], existing).empty
    assert plan(svc, [], []).empty
    assert desired_endpoints(svc, [pod("p")]) == {}


@pytest.mark.parametrize(
    "eps",
    [
        pytest.param(foreign_slice("x", {SERVICE_NAME_LABEL: "shop"}), id="not-managed-by-us"),
        pytest.param(foreign_slice("x", {**OURS, MANAGED_BY_LABEL: "mesh"}), id="other-manager"),
        pytest.param(foreign_slice("x", {**OURS, SERVICE_NAME_LABEL: "cart"}), id="other-service"),
        pytest.param(foreign_slice("x", OURS, namespace="other"), id="other-namespace"),
    ],
)
def test_slices_not_labelled_ours_are_ignored(eps: Slice) -> None:
    step = plan(service(), [pod("p")], [eps])
    assert len(step.create) == 1 and (step.update, step.delete) == ((), ())


def test_a_predecessors_slice_is_deleted_not_reused() -> None:
    cluster = Cluster()
    cluster.sync(service(), [pod("p")])
    (stale,) = cluster.existing()
    stale.metadata.owner_references[0].uid = "uid-of-a-deleted-shop"
    step = plan(service(), [pod("p")], [stale])
    assert (len(step.create), step.update, step.delete) == (1, (), (stale.metadata.name,))


def test_max_endpoints_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_endpoints"):
        plan(service(), [], max_endpoints=0)


# ---------------------------------------------------------------- properties

POD_NAMES = [f"p{i}" for i in range(10)]
SERVICE_PORTS = {
    "named": [HTTP],
    "number": [("web", "TCP", 80, "8080")],
    "both": [HTTP, ("metrics", "TCP", 9100, "9100")],
}


@dataclass(frozen=True)
class PodFacts:
    labels: tuple[tuple[str, str], ...]
    has_ip: bool
    ready: bool
    terminating: bool
    phase: str
    http: int | None  # the "http" container port, if any
    ip_salt: int = 0

    def build(self, name: str) -> objects_pb2.Pod:
        ports = {} if self.http is None else {"http": self.http}
        ip = ip_of(f"{name}/{self.ip_salt}") if self.has_ip else None
        return pod(
            name,
            labels=dict(self.labels),
            ip=ip,
            ready=self.ready,
            terminating=self.terminating,
            phase=self.phase,
            ports=ports,
        )


LABELS = st.sampled_from(
    [
        (("app", "shop"), ("env", "prod")),
        (("app", "shop"), ("cur", "usd"), ("env", "prod")),
        (("app", "shop"), ("env", "dev")),
        (("app", "shop"),),
    ]
)
FACTS = st.builds(
    PodFacts,
    labels=LABELS,
    has_ip=st.booleans(),
    ready=st.booleans(),
    terminating=st.booleans(),
    phase=st.sampled_from(["Running", "Running", "Pending", "Succeeded", "Failed"]),
    http=st.sampled_from([8080, 8080, 9090, None]),
    ip_salt=st.integers(0, 1),
)
WORLD = st.dictionaries(st.sampled_from(POD_NAMES), FACTS, max_size=len(POD_NAMES))
SETUP = st.tuples(st.sampled_from(sorted(SERVICE_PORTS)), st.booleans(), st.integers(1, 4))


def build(world: Mapping[str, PodFacts]) -> list[objects_pb2.Pod]:
    return [facts.build(name) for name, facts in sorted(world.items())]


def expected_listing(
    world: Mapping[str, PodFacts], ports_kind: str, publish: bool
) -> dict[str, tuple[tuple[bool, bool, bool], frozenset[PortSpec]]]:
    """The model: pod name -> ((ready, serving, terminating), ports)."""
    out = {}
    for name, f in world.items():
        labels = dict(f.labels)
        if not (f.has_ip and f.phase in ("Running", "Pending")):
            continue
        if labels.get("env") != "prod" or labels.get("app") != "shop":
            continue
        serving = f.ready or publish
        ready = publish or (f.ready and not f.terminating)
        ports = set()
        for port_name, _, _, target in SERVICE_PORTS[ports_kind]:
            if target == "http":
                if f.http is not None:
                    ports.add(PortSpec(port_name, "TCP", f.http))
            else:
                ports.add(PortSpec(port_name, "TCP", int(target)))
        out[name] = ((ready, serving, f.terminating), frozenset(ports))
    return out


def check_converged(
    cluster: Cluster,
    world: Mapping[str, PodFacts],
    ports_kind: str,
    publish: bool,
    max_endpoints: int,
) -> None:
    expected = expected_listing(world, ports_kind, publish)
    assert dict(cluster.listed()) == dict.fromkeys(expected, 1)
    for name, (conds, ports) in expected.items():
        assert conditions(cluster.endpoint(name)) == conds
        assert cluster.ports(name) == ports
    sizes = [len(eps.endpoints) for eps in cluster.existing()]
    assert all(size <= max_endpoints for size in sizes)
    if expected:
        assert 0 not in sizes  # no placeholder, no stray empty slice
    else:
        (placeholder,) = cluster.existing()
        assert (list(placeholder.endpoints), list(placeholder.ports)) == ([], [])
    # Slices of one port set hold the same ports: grouping is by the pod's resolution.
    for eps in cluster.existing():
        assert all(cluster.ports(ep.target_ref.name) == slice_ports(eps) for ep in eps.endpoints)


def slice_ports(eps: Slice) -> frozenset[PortSpec]:
    return frozenset(PortSpec.from_proto(port) for port in eps.ports)


@settings(max_examples=200, deadline=None)
@given(first=WORLD, second=WORLD, setup=SETUP, seed=st.integers(0, 3))
def test_any_change_converges_in_one_plan(
    first: dict[str, PodFacts], second: dict[str, PodFacts], setup: tuple[str, bool, int], seed: int
) -> None:
    ports_kind, publish, max_endpoints = setup
    svc = service(ports=SERVICE_PORTS[ports_kind], publish=publish)
    cluster = Cluster()
    cluster.sync(svc, build(first), max_endpoints=max_endpoints, seed=seed)
    check_converged(cluster, first, ports_kind, publish, max_endpoints)
    before = cluster.holder()
    before_ports = {name: cluster.ports(name) for name in before}

    step = cluster.sync(svc, build(second), max_endpoints=max_endpoints, seed=seed + 7)
    check_converged(cluster, second, ports_kind, publish, max_endpoints)
    # Each pod whose endpoint changed costs at most two writes (out of one port group, into
    # another); anything else costs none.
    was, now = (
        {name: (entry, world[name].ip_salt) for name, entry in listing.items()}
        for world, listing in (
            (first, expected_listing(first, ports_kind, publish)),
            (second, expected_listing(second, ports_kind, publish)),
        )
    )
    assert writes(step) <= 2 * sum(1 for name in POD_NAMES if was.get(name) != now.get(name))
    # Endpoints that stay in their port group stay in their slice.
    for name, slice_name in cluster.holder().items():
        if name in before and before_ports[name] == cluster.ports(name):
            assert before[name] == slice_name


CHANGES = st.sampled_from(["remove", "flip-ready", "terminate", "relabel", "new-ip"])


def tweak(facts: PodFacts, change: str) -> PodFacts:
    """One fact of a pod changed: what a probe, a delete, a relabel or a restart does."""
    if change == "flip-ready":
        return replace(facts, ready=not facts.ready)
    if change == "terminate":
        return replace(facts, terminating=True)
    if change == "relabel":
        env = "dev" if dict(facts.labels).get("env") == "prod" else "prod"
        return replace(facts, labels=(("app", "shop"), ("env", env)))
    return replace(facts, ip_salt=1 - facts.ip_salt)


@settings(max_examples=300, deadline=None)
@given(
    world=WORLD,
    setup=SETUP,
    change=CHANGES,
    target=st.sampled_from(POD_NAMES),
    added=FACTS,
)
def test_one_pod_changed_writes_at_most_one_slice(
    world: dict[str, PodFacts],
    setup: tuple[str, bool, int],
    change: str,
    target: str,
    added: PodFacts,
) -> None:
    ports_kind, publish, max_endpoints = setup
    svc = service(ports=SERVICE_PORTS[ports_kind], publish=publish)
    cluster = Cluster()
    cluster.sync(svc, build(world), max_endpoints=max_endpoints)
    before = cluster.holder()
    previous = cluster.existing()

    changed = dict(world)
    current = world.get(target)
    if current is None:
        changed[target] = added
    elif change == "remove":
        del changed[target]
    else:
        changed[target] = tweak(current, change)

    step = cluster.sync(svc, build(changed), max_endpoints=max_endpoints)
    assert writes(step) <= 1, step
    # A create only when the pod's port group has no slice with room (or no slice at all),
    # a delete only of the slice that listed the pod alone.
    for eps in step.create:
        same_ports = [old for old in previous if slice_ports(old) == slice_ports(eps)]
        assert all(len(old.endpoints) >= max_endpoints for old in same_ports)
    for name in step.delete:
        assert [pod_name for pod_name, held in before.items() if held == name] == [target]
    check_converged(cluster, changed, ports_kind, publish, max_endpoints)
    after = cluster.holder()
    assert all(after[name] == before[name] for name in before.keys() & after.keys())
