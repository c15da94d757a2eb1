"""`SliceMemo`: a headless Service's records slice by slice, recomputed only where a
slice changed, and always equal to computing them all again."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.v1 import objects_pb2
from services.dns.logic.dns_records import service_records
from services.dns.sync import SliceMemo

ZONE = "cluster.local."


def headless(publish: bool = False) -> objects_pb2.Service:
    body: dict[str, Any] = {
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": publish},
    }
    return json_format.ParseDict(body, objects_pb2.Service())


def slice_of(index: int, ready: list[bool]) -> objects_pb2.EndpointSlice:
    body = {
        "metadata": {
            "name": f"db-{index}",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "db"},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [f"10.0.{index}.{n}"], "conditions": {"ready": r}}
            for n, r in enumerate(ready)
        ],
        "ports": [{"name": "pg", "protocol": "TCP", "port": 5432}],
    }
    return json_format.ParseDict(body, objects_pb2.EndpointSlice())


def memoized(
    svc: objects_pb2.Service, slices: list[objects_pb2.EndpointSlice], memo: SliceMemo
) -> list[Any]:
    return service_records(svc, slices, domain=ZONE, per_slice=memo.records)


def test_an_unchanged_slice_reuses_its_records_and_a_changed_one_does_not() -> None:
    slices = [slice_of(0, [True, True]), slice_of(1, [True, False])]
    first = SliceMemo({})
    memoized(headless(), slices, first)
    second = SliceMemo(first.fresh)
    changed = [slices[0], slice_of(1, [True, True])]
    records = memoized(headless(), changed, second)
    assert second.fresh["db-0"][4] is first.fresh["db-0"][4]
    assert second.fresh["db-1"][4] is not first.fresh["db-1"][4]
    assert records == service_records(headless(), changed, domain=ZONE)


def test_a_service_change_recomputes_and_a_gone_slice_is_forgotten() -> None:
    slices = [slice_of(0, [True, False]), slice_of(1, [False])]
    first = SliceMemo({})
    memoized(headless(), slices, first)
    second = SliceMemo(first.fresh)
    records = memoized(headless(publish=True), slices[:1], second)
    assert second.fresh.keys() == {"db-0"}
    assert second.fresh["db-0"][4] is not first.fresh["db-0"][4]
    assert records == service_records(headless(publish=True), slices[:1], domain=ZONE)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    history=st.lists(
        st.tuples(st.booleans(), st.lists(st.lists(st.booleans(), max_size=4), max_size=4)),
        min_size=1,
        max_size=6,
    )
)
def test_memoized_records_always_equal_a_fresh_computation(
    history: list[tuple[bool, list[list[bool]]]],
) -> None:
    last: dict[str, Any] = {}
    for publish, readiness in history:
        slices = [slice_of(i, ready) for i, ready in enumerate(readiness)]
        memo = SliceMemo(last)
        assert memoized(headless(publish), slices, memo) == service_records(
            headless(publish), slices, domain=ZONE
        )
        last = memo.fresh
