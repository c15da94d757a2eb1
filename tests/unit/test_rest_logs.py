"""The pure parts of `pods/<name>/log`: its query parameters as Kubernetes validates them,
the container the apiserver picks, and the warnings for what kubelab cannot honour."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.apiserver.rest import log_options
from services.apiserver.rest.errors import ApiError
from services.apiserver.rest.log_options import LogOptions


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({}, LogOptions(), id="nothing"),
        pytest.param(
            {"container": "web", "follow": "true", "tailLines": "2"},
            LogOptions(container="web", follow=True, tail_lines=2),
            id="kubectl-logs-f-tail",
        ),
        pytest.param({"tailLines": "0"}, LogOptions(tail_lines=0), id="tail-zero"),
        pytest.param({"previous": "1"}, LogOptions(previous=True), id="previous"),
        pytest.param(
            {"limitBytes": "10", "timestamps": "true", "sinceSeconds": "300"},
            LogOptions(limit_bytes=10, timestamps=True, since_seconds=300),
            id="limit-timestamps-since",
        ),
        pytest.param(
            {"sinceTime": "2026-01-02T03:04:05Z"},
            LogOptions(since_time="2026-01-02T03:04:05Z"),
            id="since-time",
        ),
    ],
)
def test_parse(query: dict[str, str], expected: LogOptions) -> None:
    assert log_options.parse(query, "p") == expected


@pytest.mark.parametrize(
    ("query", "code", "words"),
    [
        pytest.param(
            {"tailLines": "-1"},
            422,
            'PodLogOptions "p" is invalid: tailLines: Invalid value: -1: '
            "must be greater than or equal to 0",
            id="negative-tail",
        ),
        pytest.param({"limitBytes": "0"}, 422, "limitBytes: Invalid value: 0", id="zero-limit"),
        pytest.param({"sinceSeconds": "0"}, 422, "sinceSeconds: Invalid value: 0", id="since-0"),
        pytest.param(
            {"sinceSeconds": "5", "sinceTime": "2026-01-02T03:04:05Z"},
            422,
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
            id="both-since",
        ),
        pytest.param({"sinceTime": "yesterday"}, 422, "must be RFC 3339", id="bad-since-time"),
        pytest.param(
            {"tailLines": "-1", "limitBytes": "0"}, 422, "is invalid: [tailLines", id="several"
        ),
        pytest.param({"tailLines": "two"}, 400, 'tailLines: Invalid value: "two"', id="nan"),
    ],
)
def test_parse_refuses(query: dict[str, str], code: int, words: str) -> None:
    with pytest.raises(ApiError) as caught:
        log_options.parse(query, "p")
    assert caught.value.code == code
    assert words in caught.value.message
    if code == 422:
        assert caught.value.details["kind"] == "PodLogOptions"
        assert caught.value.details["causes"]


@pytest.mark.parametrize(
    ("containers", "asked", "chosen"),
    [
        pytest.param(["web"], "", "web", id="only-one"),
        pytest.param(["a", "b"], "b", "b", id="named"),
    ],
)
def test_choose_container(containers: list[str], asked: str, chosen: str) -> None:
    assert log_options.choose_container("p", containers, asked) == chosen


@pytest.mark.parametrize(
    ("containers", "asked", "message"),
    [
        pytest.param(
            ["a", "b"],
            "",
            "a container name must be specified for pod p, choose one of: [a b]",
            id="several",
        ),
        pytest.param(["a"], "c", "container c is not valid for pod p", id="unknown"),
        pytest.param([], "", "pod p has no containers", id="none"),
    ],
)
def test_choose_container_refuses(containers: list[str], asked: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        log_options.choose_container("p", containers, asked)
    assert (caught.value.code, caught.value.message) == (400, message)


@given(st.integers(min_value=0, max_value=2**31), st.booleans(), st.booleans())
def test_a_valid_tail_is_kept(tail: int, follow: bool, previous: bool) -> None:
    query = {"tailLines": str(tail), "follow": str(follow).lower(), "previous": str(previous)}
    options = log_options.parse(query, "p")
    assert options.tail_lines == tail
    assert options.streams == (follow and not previous)


NOW = datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC)
NOW_NS = int(NOW.timestamp()) * 1_000_000_000


@pytest.mark.parametrize(
    ("options", "since"),
    [
        pytest.param(LogOptions(container="x", follow=True), None, id="every-line"),
        pytest.param(LogOptions(since_seconds=5), NOW_NS - 5_000_000_000, id="since-seconds"),
        pytest.param(
            LogOptions(since_time="2026-12-07T09:00:00Z"), NOW_NS - 3600 * 10**9, id="since-time"
        ),
        pytest.param(
            LogOptions(since_time="2026-12-07T10:30:00+01:00"),
            NOW_NS - 1800 * 10**9,
            id="since-time-with-an-offset",
        ),
    ],
)
def test_since_is_one_instant_as_the_kubelet_computes_it(
    options: LogOptions, since: int | None
) -> None:
    assert log_options.since_ns(options, NOW) == since
