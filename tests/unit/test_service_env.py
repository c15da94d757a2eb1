"""Service environment variables, name for name as the kubelet makes them."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

from kubelab.v1 import objects_pb2
from node_agent.logic.service_env import (
    SERVICE_LINKS_BUDGET,
    env_size,
    env_var_name,
    service_environment,
    service_links,
)


def svc(name: str, spec: dict[str, Any], namespace: str = "default") -> objects_pb2.Service:
    return json_format.ParseDict(
        {"metadata": {"name": name, "namespace": namespace}, "spec": spec}, objects_pb2.Service()
    )


SHOP_HTTP = {
    "SHOP_SERVICE_HOST": "127.96.0.12",
    "SHOP_SERVICE_PORT": "80",
    "SHOP_SERVICE_PORT_HTTP": "80",
    "SHOP_PORT": "tcp://127.96.0.12:80",
    "SHOP_PORT_80_TCP": "tcp://127.96.0.12:80",
    "SHOP_PORT_80_TCP_PROTO": "tcp",
    "SHOP_PORT_80_TCP_PORT": "80",
    "SHOP_PORT_80_TCP_ADDR": "127.96.0.12",
}


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        pytest.param(
            [svc("shop", {"clusterIP": "127.96.0.12", "ports": [{"name": "http", "port": 80}]})],
            SHOP_HTTP,
            id="one-named-port-protocol-defaults-to-tcp",
        ),
        pytest.param(
            [svc("shop", {"clusterIP": "127.96.0.12", "ports": [{"port": 80, "protocol": "TCP"}]})],
            {k: v for k, v in SHOP_HTTP.items() if k != "SHOP_SERVICE_PORT_HTTP"},
            id="unnamed-port-has-no-named-variable",
        ),
        pytest.param(
            [
                svc(
                    "my-dns",
                    {
                        "clusterIP": "127.96.0.10",
                        "ports": [
                            {"name": "dns", "port": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                        ],
                    },
                )
            ],
            {
                "MY_DNS_SERVICE_HOST": "127.96.0.10",
                "MY_DNS_SERVICE_PORT": "53",
                "MY_DNS_SERVICE_PORT_DNS": "53",
                "MY_DNS_SERVICE_PORT_DNS_TCP": "53",
                "MY_DNS_PORT": "udp://127.96.0.10:53",
                "MY_DNS_PORT_53_UDP": "udp://127.96.0.10:53",
                "MY_DNS_PORT_53_UDP_PROTO": "udp",
                "MY_DNS_PORT_53_UDP_PORT": "53",
                "MY_DNS_PORT_53_UDP_ADDR": "127.96.0.10",
                "MY_DNS_PORT_53_TCP": "tcp://127.96.0.10:53",
                "MY_DNS_PORT_53_TCP_PROTO": "tcp",
                "MY_DNS_PORT_53_TCP_PORT": "53",
                "MY_DNS_PORT_53_TCP_ADDR": "127.96.0.10",
            },
            id="dashes-and-two-protocols-first-port-is-the-link",
        ),
        pytest.param(
            [svc("web", {"clusterIP": "fd00::5", "ports": [{"port": 8080}]})],
            {
                "WEB_SERVICE_HOST": "fd00::5",
                "WEB_SERVICE_PORT": "8080",
                "WEB_PORT": "tcp://[fd00::5]:8080",
                "WEB_PORT_8080_TCP": "tcp://[fd00::5]:8080",
                "WEB_PORT_8080_TCP_PROTO": "tcp",
                "WEB_PORT_8080_TCP_PORT": "8080",
                "WEB_PORT_8080_TCP_ADDR": "fd00::5",
            },
            id="ipv6-host-port-in-brackets",
        ),
        pytest.param(
            [svc("db", {"clusterIP": "None", "ports": [{"port": 5432}]})], {}, id="headless"
        ),
        pytest.param(
            [svc("ext", {"type": "ExternalName", "externalName": "example.com"})],
            {},
            id="external-name",
        ),
        pytest.param([svc("new", {"ports": [{"port": 80}]})], {}, id="no-cluster-ip-yet"),
        pytest.param([], {}, id="no-services"),
    ],
)
def test_service_environment(services: list[objects_pb2.Service], expected: dict[str, str]) -> None:
    assert service_environment(services) == expected


def test_namespace_filter_keeps_only_the_pods_namespace() -> None:
    services = [
        svc("shop", {"clusterIP": "127.96.0.12", "ports": [{"name": "http", "port": 80}]}),
        svc("other", {"clusterIP": "127.96.0.13", "ports": [{"port": 81}]}, namespace="prod"),
    ]
    assert service_environment(services, namespace="default") == SHOP_HTTP


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("shop", "SHOP", id="plain"),
        pytest.param("my-shop-2", "MY_SHOP_2", id="dashes"),
    ],
)
def test_env_var_name(name: str, expected: str) -> None:
    assert env_var_name(name) == expected


def ports(count: int) -> list[dict[str, Any]]:
    return [{"name": f"p{i}", "port": 1000 + i} for i in range(count)]


@pytest.mark.parametrize(
    ("services", "budget", "kept", "skipped"),
    [
        pytest.param(
            [svc("shop", {"clusterIP": "127.96.0.12", "ports": [{"name": "http", "port": 80}]})],
            SERVICE_LINKS_BUDGET,
            ["shop"],
            (),
            id="small-service-kept",
        ),
        pytest.param(
            [
                svc("shop", {"clusterIP": "127.96.0.12", "ports": ports(1)}),
                svc("big", {"clusterIP": "127.96.0.13", "ports": ports(20000)}),
            ],
            SERVICE_LINKS_BUDGET,
            ["shop"],
            ("big",),
            id="20000-ports-skipped-others-kept",
        ),
        pytest.param(
            [
                # a alone (1971 bytes) would fit, but b and c (475 each) would not beside it
                svc("a", {"clusterIP": "127.96.0.12", "ports": ports(10)}),
                svc("b", {"clusterIP": "127.96.0.13", "ports": ports(2)}),
                svc("c", {"clusterIP": "127.96.0.14", "ports": ports(2)}),
            ],
            2000,
            ["b", "c"],
            ("a",),
            id="smaller-services-first",
        ),
        pytest.param(
            [svc("headless", {"clusterIP": "None", "ports": ports(20000)})],
            SERVICE_LINKS_BUDGET,
            [],
            (),
            id="headless-has-no-variables-to-skip",
        ),
    ],
)
def test_service_links_stay_in_budget(
    services: list[objects_pb2.Service], budget: int, kept: list[str], skipped: tuple[str, ...]
) -> None:
    links = service_links(services, budget=budget)
    assert links.skipped == skipped
    expected = service_environment([s for s in services if s.metadata.name in kept])
    assert links.env == expected
    assert env_size(links.env) <= budget


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=8), st.integers(0, 20000))
def test_service_links_never_pass_the_budget(counts: list[int], budget: int) -> None:
    services = [
        svc(f"s{i}", {"clusterIP": f"127.96.0.{i + 1}", "ports": ports(n)})
        for i, n in enumerate(counts)
    ]
    links = service_links(services, budget=budget)
    assert env_size(links.env) <= budget
    named = {s.metadata.name for s in services if s.spec.ports}
    kept = {k.split("_", 1)[0].lower() for k in links.env if k.endswith("_SERVICE_HOST")}
    assert kept | set(links.skipped) == named, "every Service is either linked or skipped"
    assert not kept & set(links.skipped)


def test_env_size_counts_what_exec_counts() -> None:
    # "A=bc" and its NUL, plus its envp pointer.
    assert env_size({"A": "bc"}) == 5 + 8
