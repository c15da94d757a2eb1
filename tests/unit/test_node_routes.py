"""Lab mode's host-gw routes: one `<podCIDR> via <InternalIP>` per other node, and the
fewest changes from what is installed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core.node_routes import desired_routes, installed_routes, route_changes
from kubelab.v1 import objects_pb2


def node(name: str, cidr: str = "", ip: str = "", *more: tuple[str, str]) -> objects_pb2.Node:
    n = objects_pb2.Node()
    n.metadata.name = name
    if cidr:
        n.spec.pod_cidr = cidr
        n.spec.pod_cidrs.append(cidr)
    if ip:
        n.status.addresses.add(type="InternalIP", address=ip)
    for kind, address in more:
        n.status.addresses.add(type=kind, address=address)
    return n


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        pytest.param([], {}, id="no nodes"),
        pytest.param([node("me", "10.244.1.0/24", "172.28.0.101")], {}, id="only me"),
        pytest.param(
            [
                node("me", "10.244.1.0/24", "172.28.0.101"),
                node("b", "10.244.2.0/24", "172.28.0.102"),
                node("c", "10.244.3.0/24", "172.28.0.103"),
            ],
            {"10.244.2.0/24": "172.28.0.102", "10.244.3.0/24": "172.28.0.103"},
            id="every other node",
        ),
        pytest.param(
            [node("b", "10.244.2.0/24", "", ("Hostname", "b"), ("ExternalIP", "172.29.0.102"))],
            {},
            id="no InternalIP: no gateway",
        ),
        pytest.param([node("b", "", "172.28.0.102")], {}, id="no pod CIDR"),
        pytest.param([node("b", "nonsense", "172.28.0.102")], {}, id="invalid CIDR"),
        pytest.param([node("b", "10.244.2.0/24", "fe80::1")], {}, id="IPv6 gateway"),
        pytest.param(
            [node("b", "10.244.2.7/24", "172.28.0.102")],
            {"10.244.2.0/24": "172.28.0.102"},
            id="host bits dropped",
        ),
        pytest.param(
            [
                node("c", "10.244.2.0/24", "172.28.0.103"),
                node("b", "10.244.2.0/24", "172.28.0.102"),
            ],
            {"10.244.2.0/24": "172.28.0.102"},
            id="a CIDR claimed twice: the first node by name",
        ),
    ],
)
def test_desired_routes(nodes: list[objects_pb2.Node], expected: dict[str, str]) -> None:
    assert desired_routes(nodes, "me") == expected


@pytest.mark.parametrize(
    ("installed", "desired", "replace", "delete"),
    [
        pytest.param({}, {}, {}, [], id="nothing"),
        pytest.param({}, {"a": "1"}, {"a": "1"}, [], id="new"),
        pytest.param({"a": "1"}, {"a": "1"}, {}, [], id="unchanged: no command"),
        pytest.param({"a": "1"}, {"a": "2"}, {"a": "2"}, [], id="gateway moved"),
        pytest.param({"a": "1", "b": "2"}, {"b": "2"}, {}, ["a"], id="node gone"),
    ],
)
def test_route_changes(
    installed: dict[str, str], desired: dict[str, str], replace: dict[str, str], delete: list[str]
) -> None:
    assert route_changes(installed, desired) == (replace, delete)


routes = st.dictionaries(st.sampled_from("abcdef"), st.sampled_from("123"))


@given(routes, routes)
def test_applying_the_changes_gives_the_desired_routes(
    installed: dict[str, str], desired: dict[str, str]
) -> None:
    replace, delete = route_changes(installed, desired)
    after = {cidr: via for cidr, via in installed.items() if cidr not in delete}
    after.update(replace)
    assert after == desired
    assert not set(replace) & set(delete)


def test_installed_routes_reads_the_via_routes_of_ip_route_show() -> None:
    output = (
        "default via 172.28.0.128 dev eth0 \n"
        "10.244.2.0/24 via 172.28.0.102 dev eth0 \n"
        "10.244.3.0/24 via 172.28.0.103 dev eth0 proto static \n"
        "unreachable 10.244.0.0/16 \n"
        "172.28.0.0/24 dev eth0 proto kernel scope link src 172.28.0.101 \n"
    )
    assert installed_routes(output) == {
        "10.244.2.0/24": "172.28.0.102",
        "10.244.3.0/24": "172.28.0.103",
    }
    assert installed_routes("") == {}
