"""What process a container becomes: image defaults, echo port modes, environment."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from google.protobuf import json_format

from kubelab.v1 import objects_pb2
from node_agent.launch import container_argv, container_env, echo_port_args, is_echo_image

ECHO = [sys.executable, "-m", "workloads.echo"]


def container(**fields: Any) -> objects_pb2.Container:
    return json_format.ParseDict({"name": "c", **fields}, objects_pb2.Container())


@pytest.mark.parametrize(
    ("image", "echo"),
    [
        pytest.param("kubelab/echo", True, id="bare"),
        pytest.param("kubelab/echo:1.2", True, id="tag"),
        pytest.param("docker.io/kubelab/echo@sha256:abcd", True, id="registry-digest"),
        pytest.param("localhost:5000/kubelab/echo:dev", True, id="registry-with-port"),
        pytest.param("kubelab/echoes", False, id="other-name"),
        pytest.param("nginx:1.27", False, id="nginx"),
    ],
)
def test_is_echo_image(image: str, echo: bool) -> None:
    assert is_echo_image(image) is echo


def test_echo_port_modes_by_protocol_and_name() -> None:
    ports = [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"containerPort": 8081},
        {"name": "tcp-echo", "containerPort": 9000, "protocol": "TCP"},
        {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
        {"name": "sctp", "containerPort": 7000, "protocol": "SCTP"},
        {"name": "bulk", "containerPort": 9100},
    ]
    assert echo_port_args(container(ports=ports)) == [
        *("--http", "8080", "--http", "8081", "--tcp", "9000", "--udp", "5353"),
        *("--bulk", "9100"),
    ]


@pytest.mark.parametrize(
    ("fields", "argv"),
    [
        pytest.param(
            {"image": "kubelab/echo", "ports": [{"containerPort": 80}]},
            [*ECHO, "--http", "80"],
            id="echo",
        ),
        pytest.param({"image": "nginx"}, ECHO, id="other-image-stands-in-echo"),
        pytest.param(
            {"image": "kubelab/echo", "args": ["--udp", "53"]},
            [*ECHO, "--udp", "53"],
            id="echo-args-appended",
        ),
        pytest.param(
            {"image": "busybox", "args": ["sh", "-c", "true"]},
            ["sh", "-c", "true"],
            id="args-alone-are-the-command-without-entrypoint",
        ),
        pytest.param(
            {"image": "kubelab/echo", "command": ["sleep"], "args": ["5"]},
            ["sleep", "5"],
            id="command-plus-args",
        ),
    ],
)
def test_container_argv(fields: dict[str, Any], argv: list[str]) -> None:
    assert container_argv(container(**fields)) == argv


def test_env_precedence_services_then_identity_then_container_env() -> None:
    c = container(
        image="busybox",
        command=["env"],
        env=[{"name": "SHOP_SERVICE_HOST", "value": "mine"}, {"name": "X", "value": "1"}],
    )
    env = container_env(
        c,
        identity={"POD_IP": "127.244.1.2", "POD_NAME": "p"},
        services={"SHOP_SERVICE_HOST": "127.96.0.1", "POD_IP": "wrong"},
    )
    assert env["SHOP_SERVICE_HOST"] == "mine"
    assert env["POD_IP"] == "127.244.1.2"
    assert env["X"] == "1"
    assert "PYTHONPATH" not in env  # only the echo server gets one
