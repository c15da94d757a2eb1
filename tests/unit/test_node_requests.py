"""The node agent's request checks: which KillPod and Logs requests are client mistakes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.v1 import node_pb2
from node_agent.logic.node_requests import (
    SIGNALS,
    container_problem,
    signal_ranges,
    validate_kill,
    validate_logs,
)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param(node_pb2.KillPodRequest(name="web"), [], id="default-signal"),
        pytest.param(node_pb2.KillPodRequest(name="web", signal=15), [], id="sigterm"),
        pytest.param(node_pb2.KillPodRequest(name="web", signal=64), [], id="sigrtmax"),
        pytest.param(
            node_pb2.KillPodRequest(name="web", signal=-1),
            [
                "signal: Invalid value: -1: must be a signal number that `kill -l` lists: "
                "1-31, 34-64"
            ],
            id="negative",
        ),
        pytest.param(
            node_pb2.KillPodRequest(name="web", signal=32),
            [
                "signal: Invalid value: 32: must be a signal number that `kill -l` lists: "
                "1-31, 34-64"
            ],
            id="libc-reserved",
        ),
        pytest.param(node_pb2.KillPodRequest(), ["name: Required value"], id="no-name"),
        pytest.param(
            node_pb2.KillPodRequest(name="web", namespace="a/b"),
            ['namespace: Invalid value: "a/b": a lowercase RFC 1123 label'],
            id="namespace-path",
        ),
    ],
)
def test_kill_requests(request_: node_pb2.KillPodRequest, expected: list[str]) -> None:
    found = [str(p) for p in validate_kill(request_)]
    assert len(found) == len(expected)
    for text, start in zip(found, expected, strict=True):
        assert text.startswith(start)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param(node_pb2.LogsRequest(name="web"), None, id="plain"),
        pytest.param(node_pb2.LogsRequest(name="web", container="app"), None, id="container"),
        pytest.param(node_pb2.LogsRequest(name="web", tail_lines=-1), "tailLines", id="tail"),
        pytest.param(
            node_pb2.LogsRequest(name="web", container="../../etc/passwd"),
            "container",
            id="relative-path",
        ),
        pytest.param(
            node_pb2.LogsRequest(name="web", container="/etc/passwd"),
            "container",
            id="absolute-path",
        ),
        pytest.param(node_pb2.LogsRequest(name="../web"), "name", id="name-path"),
    ],
)
def test_logs_requests(request_: node_pb2.LogsRequest, field: str | None) -> None:
    found = validate_logs(request_)
    assert [p.field for p in found] == ([field] if field else [])


@given(st.text(min_size=1))
def test_a_container_name_with_a_slash_is_never_accepted(text: str) -> None:
    name = f"{text}/x"
    assert validate_logs(node_pb2.LogsRequest(name="web", container=name))


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_a_signal_is_accepted_exactly_when_kill_lists_it(number: int) -> None:
    problems = validate_kill(node_pb2.KillPodRequest(name="web", signal=number))
    assert (not problems) == (number == 0 or number in SIGNALS)


def test_signal_ranges_are_runs() -> None:
    assert signal_ranges([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8"


def test_container_problem_in_kubectl_words() -> None:
    assert container_problem("web", ["app"], "app") is None
    problem = container_problem("web", ["app", "side"], "nope")
    assert problem is not None
    assert str(problem) == (
        'container: Invalid value: "nope": container nope is not valid for pod web '
        "(its containers: app, side)"
    )
