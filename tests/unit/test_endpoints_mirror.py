"""Endpoints derived from EndpointSlices, as Kubernetes' Endpoints controller writes them.

Tables of slices in, Endpoints out (subsets repacked, readiness, what is left out,
identity, truncation), kubectl's ENDPOINTS column, and hypothesis properties against
a simple model: the subsets expand to exactly the (address, port) pairs the slices
offer, ready where every slice says ready, each pair once.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core.endpointslices import HEADLESS_LABEL
from kubelab.v1 import objects_pb2
from services.apiserver.k8s import endpoints_mirror as mirror
from tests.unit.slice_builders import HTTP, METRICS, SHOP, address, eps, pod


def subsets(*slices: objects_pb2.EndpointSlice) -> list[dict[str, Any]]:
    found = mirror.endpoints_of(SHOP, slices)
    assert found is not None
    return list(found.get("subsets", []))


@pytest.mark.parametrize(
    ("slices", "expected"),
    [
        pytest.param(
            [eps("shop-a", [pod("10.0.0.2"), pod("10.0.0.1")])],
            [{"addresses": [address("10.0.0.1"), address("10.0.0.2")], "ports": [HTTP]}],
            id="ready-pods-sorted-by-ip",
        ),
        pytest.param(
            [eps("shop-a", [pod("10.0.0.10"), pod("10.0.0.9")])],
            [{"addresses": [address("10.0.0.10"), address("10.0.0.9")], "ports": [HTTP]}],
            id="ips-compare-as-text-like-kubernetes",
        ),
        pytest.param(
            [eps("shop-a", [pod("10.0.0.1"), pod("10.0.0.2", ready=False)])],
            [
                {
                    "addresses": [address("10.0.0.1")],
                    "notReadyAddresses": [address("10.0.0.2")],
                    "ports": [HTTP],
                }
            ],
            id="not-ready-in-the-same-subset",
        ),
        pytest.param(
            [eps("shop-a", [pod("10.0.0.1", ready=None), pod("10.0.0.2", ready=None)])],
            [{"addresses": [address("10.0.0.1"), address("10.0.0.2")], "ports": [HTTP]}],
            id="unset-ready-counts-as-ready",
        ),
        pytest.param(
            [
                eps(
                    "shop-a",
                    [
                        pod("10.0.0.1"),
                        pod("10.0.0.2", ready=False, terminating=True),
                        pod("10.0.0.3", ready=True, terminating=True),
                    ],
                )
            ],
            [{"addresses": [address("10.0.0.1"), address("10.0.0.3")], "ports": [HTTP]}],
            id="terminating-left-out-unless-ready",
        ),
        pytest.param(
            [eps("shop-a", [pod("10.0.0.1")], [METRICS, HTTP])],
            [{"addresses": [address("10.0.0.1")], "ports": [HTTP, METRICS]}],
            id="ports-by-name",
        ),
        pytest.param(
            [
                eps("shop-a", [pod("10.0.0.1")], [HTTP]),
                eps("shop-b", [pod("10.0.0.2")], [{**HTTP, "port": 8081}]),
            ],
            [
                {"addresses": [address("10.0.0.1")], "ports": [HTTP]},
                {"addresses": [address("10.0.0.2")], "ports": [{**HTTP, "port": 8081}]},
            ],
            id="a-subset-per-port-mapping",
        ),
        pytest.param(
            [
                eps("shop-a", [pod("10.0.0.1")]),
                eps("shop-b", [pod("10.0.0.1"), pod("10.0.0.2")]),
            ],
            [{"addresses": [address("10.0.0.1"), address("10.0.0.2")], "ports": [HTTP]}],
            id="a-pod-in-two-slices-once",
        ),
        pytest.param(
            [
                eps("shop-a", [pod("10.0.0.1")]),
                eps("shop-b", [pod("10.0.0.1", ready=False)]),
            ],
            [{"notReadyAddresses": [address("10.0.0.1")], "ports": [HTTP]}],
            id="not-ready-anywhere-wins",
        ),
        pytest.param(
            [
                eps("shop-a", [pod("10.0.0.1")], [HTTP]),
                eps("shop-b", [pod("10.0.0.1")], [METRICS]),
            ],
            [{"addresses": [address("10.0.0.1")], "ports": [HTTP, METRICS]}],
            id="one-address-on-ports-from-two-slices",
        ),
        pytest.param(
            [
                eps("shop-a", [pod("10.0.0.1"), pod("10.0.0.2")], [HTTP]),
                eps("shop-b", [pod("10.0.0.1")], [METRICS]),
            ],
            # Grouped by who offers each port: 10.0.0.1 is in both groups.
            [
                {"addresses": [address("10.0.0.1"), address("10.0.0.2")], "ports": [HTTP]},
                {"addresses": [address("10.0.0.1")], "ports": [METRICS]},
            ],
            id="repacked-by-the-addresses-each-port-has",
        ),
        pytest.param(
            [eps("shop-a", [pod("10.0.0.1")], [])],
            [{"addresses": [address("10.0.0.1")]}],
            id="headless-without-ports",
        ),
        pytest.param([eps("shop-a", [], [])], [], id="placeholder-no-subsets"),
        pytest.param(
            [
                eps("shop-a", [pod("10.0.0.1")]),
                eps("shop-b", [pod("10.0.0.2")], service="cart"),
                eps("shop-c", [pod("10.0.0.3")], managed_by="someone-else"),
                eps("shop-d", [{"addresses": ["db.example.com"]}], address_type="FQDN"),
            ],
            [{"addresses": [address("10.0.0.1")], "ports": [HTTP]}],
            id="other-services-managers-and-fqdn-ignored",
        ),
    ],
)
def test_subsets(slices: list[objects_pb2.EndpointSlice], expected: list[dict[str, Any]]) -> None:
    assert subsets(*slices) == expected


def test_an_address_carries_hostname_node_and_its_pod() -> None:
    endpoint = {**pod("10.0.0.1", "web-0", node="node-2", uid="u-1"), "hostname": "web-0"}
    assert subsets(eps("shop-a", [endpoint]))[0]["addresses"] == [
        {
            "ip": "10.0.0.1",
            "hostname": "web-0",
            "nodeName": "node-2",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": "u-1"},
        }
    ]


def test_identity_comes_from_the_service_and_its_slices() -> None:
    older = eps("shop-a", [pod("10.0.0.1")], revision=7, created="2026-12-07T10:00:00Z")
    newer = eps(
        "shop-b",
        [pod("10.0.0.2")],
        [METRICS],
        revision=12,
        labels={"app": "shop", HEADLESS_LABEL: ""},
    )
    found = mirror.endpoints_of(SHOP, [older, newer])
    assert found is not None
    assert found["kind"] == "Endpoints" and found["apiVersion"] == "v1"
    meta = found["metadata"]
    assert (meta["name"], meta["namespace"]) == ("shop", "default")
    assert meta["resourceVersion"] == "12"  # the newest slice's
    assert meta["creationTimestamp"] == "2026-12-07T10:00:00Z"  # the oldest slice's
    # The Service's labels as the newest slice carries them, the headless label kept.
    assert meta["labels"] == {"app": "shop", HEADLESS_LABEL: ""}
    assert "annotations" not in meta
    # Stable, and not the Service's own uid.
    again = mirror.endpoints_of(SHOP, [newer, older])
    assert again is not None and again["metadata"]["uid"] == meta["uid"]
    assert uuid.UUID(meta["uid"]) and meta["uid"] != "svc-uid"
    other = mirror.endpoints_of(SHOP, [eps("shop-a", owner_uid="another-uid")])
    assert other is not None and other["metadata"]["uid"] != meta["uid"]


def test_no_slices_no_endpoints() -> None:
    assert mirror.endpoints_of(SHOP, []) is None
    assert mirror.endpoints_of(SHOP, [eps("cart-a", service="cart")]) is None
    assert mirror.mirror_all([]) == []


def test_mirror_all_gives_one_per_service_by_namespace_and_name() -> None:
    found = mirror.mirror_all(
        [
            eps("shop-a", [pod("10.0.0.1")]),
            eps("shop-b", [pod("10.0.0.2")]),
            eps("cart-a", service="cart"),
            eps("shop-x", service="shop", namespace="b-team"),
            eps("hand-made", service="shop", managed_by="me"),
        ]
    )
    assert [(e["metadata"]["namespace"], e["metadata"]["name"]) for e in found] == [
        ("b-team", "shop"),
        ("default", "cart"),
        ("default", "shop"),
    ]


def _ips(n: int, start: int = 0) -> list[str]:
    return [
        f"10.{(i + start) // 65536}.{(i + start) // 256 % 256}.{(i + start) % 256}"
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("ready", "not_ready", "kept_ready", "kept_not_ready"),
    [
        pytest.param(600, 400, 600, 400, id="at-capacity-untouched"),
        pytest.param(600, 500, 600, 400, id="not-ready-cut-first"),
        pytest.param(1200, 50, 1000, 0, id="ready-cut-and-every-not-ready-dropped"),
    ],
)
def test_truncated_past_capacity(
    ready: int, not_ready: int, kept_ready: int, kept_not_ready: int
) -> None:
    endpoints = [pod(ip) for ip in _ips(ready)]
    endpoints += [pod(ip, ready=False) for ip in _ips(not_ready, start=ready)]
    found = mirror.endpoints_of(SHOP, [eps("shop-a", endpoints)])
    assert found is not None
    (subset,) = found["subsets"]
    assert len(subset.get("addresses", [])) == kept_ready
    assert len(subset.get("notReadyAddresses", [])) == kept_not_ready
    truncated = ready + not_ready > mirror.MAX_CAPACITY
    assert (found["metadata"].get("annotations") == {mirror.OVER_CAPACITY: "truncated"}) is (
        truncated
    )


def test_truncation_shares_the_room_between_subsets() -> None:
    # Kubernetes' proportions, rounded up: 900/1200 and 300/1200 of 1000 ready.
    subsets: list[dict[str, Any]] = [
        {"addresses": [{"ip": ip} for ip in _ips(900)]},
        {"addresses": [{"ip": ip} for ip in _ips(300, start=900)], "notReadyAddresses": [{}]},
    ]
    assert mirror.truncate(subsets)
    assert [len(s["addresses"]) for s in subsets] == [750, 250]
    assert "notReadyAddresses" not in subsets[1]


@pytest.mark.parametrize(
    ("subsets", "cell"),
    [
        pytest.param([], "<none>", id="no-subsets"),
        pytest.param(
            [{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [HTTP]}], "", id="none-ready"
        ),
        pytest.param(
            [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [HTTP]}],
            "10.0.0.1:8080,10.0.0.2:8080",
            id="two",
        ),
        pytest.param(
            [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)], "ports": [HTTP]}],
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more...",
            id="more",
        ),
        pytest.param(
            [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [HTTP, METRICS]}],
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.1:9090 + 1 more...",
            id="every-port",
        ),
        pytest.param([{"addresses": [{"ip": "10.0.0.1"}]}], "10.0.0.1", id="headless-no-ports"),
        pytest.param(
            [{"addresses": [{"ip": "fd00::1"}], "ports": [HTTP]}], "[fd00::1]:8080", id="ipv6"
        ),
    ],
)
def test_endpoints_cell(subsets: list[dict[str, Any]], cell: str) -> None:
    assert mirror.endpoints_cell({"subsets": subsets}) == cell


# ---------------------------------------------------------------- properties

_IPS = [f"10.0.0.{i}" for i in range(1, 7)]
_PORTS = [HTTP, METRICS, {**HTTP, "port": 8081}]
_endpoint = st.builds(
    lambda ip, ready, terminating: pod(ip, ready=ready, terminating=terminating),
    st.sampled_from(_IPS),
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.booleans()),
)
_slice = st.tuples(
    st.lists(_endpoint, max_size=5),
    # With ports: a slice without any (a headless Service's) shares a subset with one
    # that has them when their addresses agree, as in Kubernetes; a table case has it.
    st.lists(
        st.sampled_from(_PORTS), min_size=1, max_size=3, unique_by=lambda p: (p["name"], p["port"])
    ),
)


def _expected_pairs(
    slices: Sequence[tuple[list[dict[str, Any]], list[dict[str, Any]]]],
) -> dict[tuple[str, int], bool]:
    """The model: every (first address, port) a slice offers, ready only if ready in every
    slice that offers it; terminating and not ready left out."""
    pairs: dict[tuple[str, int], bool] = {}
    for endpoints, ports in slices:
        for endpoint in endpoints:
            conditions = endpoint["conditions"]
            ready = conditions.get("ready", True) is not False
            if not ready and conditions.get("terminating"):
                continue
            for port in ports:
                pair = (endpoint["addresses"][0], port["port"])
                pairs[pair] = pairs.get(pair, True) and ready
    return pairs


def _expanded(found: dict[str, Any]) -> Counter[tuple[str, int, bool]]:
    out: Counter[tuple[str, int, bool]] = Counter()
    for subset in found.get("subsets", []):
        for port in subset.get("ports") or [{"port": 0}]:
            for a in subset.get("addresses", []):
                out[(a["ip"], port["port"], True)] += 1
            for a in subset.get("notReadyAddresses", []):
                out[(a["ip"], port["port"], False)] += 1
    return out


@given(st.lists(_slice, min_size=1, max_size=4))
def test_subsets_expand_to_exactly_what_the_slices_offer(
    drawn: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]],
) -> None:
    slices = [eps(f"shop-{i}", e, p) for i, (e, p) in enumerate(drawn)]
    found = mirror.endpoints_of(SHOP, slices)
    assert found is not None
    expanded = _expanded(found)
    assert all(n == 1 for n in expanded.values()), expanded  # each pair once
    assert {(ip, port): ready for ip, port, ready in expanded} == _expected_pairs(drawn)


@given(
    st.lists(
        st.tuples(st.booleans(), st.one_of(st.none(), st.booleans())), min_size=1, max_size=12
    ),
    st.integers(min_value=1, max_value=4),
)
def test_every_ready_address_appears_once_in_addresses(
    states: list[tuple[bool, bool | None]], per_slice: int
) -> None:
    """As the controller writes slices (each pod in one slice, one port mapping): every
    ready address is listed exactly once, in `addresses`, never as not ready."""
    endpoints = [
        pod(f"10.0.1.{i}", ready=ready, terminating=terminating)
        for i, (ready, terminating) in enumerate(states)
    ]
    chunks = [endpoints[i : i + per_slice] for i in range(0, len(endpoints), per_slice)]
    found = mirror.endpoints_of(SHOP, [eps(f"shop-{i}", c) for i, c in enumerate(chunks)])
    assert found is not None
    listed = Counter(a["ip"] for s in found.get("subsets", []) for a in s.get("addresses", []))
    not_ready = {a["ip"] for s in found.get("subsets", []) for a in s.get("notReadyAddresses", [])}
    ready_ips = {
        e["addresses"][0] for e, (ready, _) in zip(endpoints, states, strict=True) if ready
    }
    assert listed == Counter(ready_ips)
    assert not ready_ips & not_ready
    assert mirror.ready_addresses(found) == sorted(ready_ips)
