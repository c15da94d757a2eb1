"""Service environment variables, name for name as the kubelet makes them."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from kubelab.core.service_env import env_var_name, service_environment
from kubelab.v1 import objects_pb2


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
