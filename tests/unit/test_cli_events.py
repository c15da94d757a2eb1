"""`kubelab get events` / `get ns` rows and describe's `Events:` section, as kubectl
prints them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubelab.cli import printers
from kubelab.cli.events import event_selector, events_section
from kubelab.core import kinds, printing
from kubelab.v1 import meta_pb2, objects_pb2

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp())


def event(
    reason: str,
    message: str,
    *,
    first: int = 0,
    last: int = 0,
    count: int = 1,
    type_: str = "Normal",
    component: str = "kubelet",
    host: str = "",
) -> objects_pb2.Event:
    out = objects_pb2.Event(
        metadata=meta_pb2.ObjectMeta(name=f"shop-1.{reason.lower()}", namespace="default"),
        involved_object=meta_pb2.ObjectReference(
            kind="Pod", name="shop-1", namespace="default", field_path="spec.containers{shop}"
        ),
        reason=reason,
        message=message,
        type=type_,
        count=count,
        source=objects_pb2.EventSource(component=component, host=host),
    )
    if first:
        out.first_timestamp.seconds = T - first
    if last:
        out.last_timestamp.seconds = T - last
    return out


def test_get_events_columns_and_wide_columns() -> None:
    fmt = printers.RowFormat()
    assert printers.header(kinds.EVENTS, fmt) == [
        "LAST SEEN",
        "TYPE",
        "REASON",
        "OBJECT",
        "MESSAGE",
    ]
    row = printers.row(
        kinds.EVENTS, event("Started", "Started container shop", first=70, last=5), NOW, fmt
    )
    assert row == ["5s", "Normal", "Started", "pod/shop-1", "Started container shop"]
    wide = printers.RowFormat(wide=True, namespaces=True)
    assert printers.header(kinds.EVENTS, wide) == [
        "NAMESPACE", "LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE",
        "MESSAGE", "FIRST SEEN", "COUNT", "NAME",
    ]  # fmt: skip
    got = printers.row(
        kinds.EVENTS, event("Killing", "Stopping", first=70, count=3, host="n1"), NOW, wide
    )
    assert got == [
        "default", "70s", "Normal", "Killing", "pod/shop-1", "spec.containers{shop}",
        "kubelet, n1", "Stopping", "70s", "3", "shop-1.killing",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("source", "reporting", "shown"),
    [
        pytest.param(("kubelet", "node-1"), ("", ""), "kubelet, node-1", id="component-host"),
        pytest.param(("", ""), ("ctl", "i-1"), "ctl, i-1", id="reporting-fallback"),
        pytest.param(("", ""), ("", ""), "<unknown>", id="unknown"),
    ],
)
def test_event_source(source: tuple[str, str], reporting: tuple[str, str], shown: str) -> None:
    e = objects_pb2.Event(
        source=objects_pb2.EventSource(component=source[0], host=source[1]),
        reporting_component=reporting[0],
        reporting_instance=reporting[1],
    )
    assert printing.event_source(e) == shown


def test_get_namespaces() -> None:
    ns = objects_pb2.Namespace(metadata=meta_pb2.ObjectMeta(name="dev"))
    ns.metadata.creation_timestamp.seconds = T - 300
    ns.status.phase = "Terminating"
    fmt = printers.RowFormat()
    assert printers.header(kinds.NAMESPACES, fmt) == ["NAME", "STATUS", "AGE"]
    assert printers.row(kinds.NAMESPACES, ns, NOW, fmt) == ["dev", "Terminating", "5m"]


def test_describe_events_section() -> None:
    events = [
        event(
            "Unhealthy", "Readiness probe failed: 503", first=120, last=2, count=4, type_="Warning"
        ),
        event(
            "Scheduled",
            "Successfully assigned default/shop-1 to node-1",
            first=130,
            last=130,
            component="default-scheduler",
        ),
        event("Pulled", "no time at all"),
    ]
    events[1].involved_object.field_path = ""  # the pod's own event: no container named
    assert events_section(events, NOW).splitlines() == [
        "Events:",
        "  Type     Reason     Age              From               Message",
        "  ----     ------     ----             ----               -------",
        "  Normal   Pulled     <unknown>        kubelet            "
        "spec.containers{shop}: no time at all",
        "  Normal   Scheduled  2m10s            default-scheduler  "
        "Successfully assigned default/shop-1 to node-1",
        "  Warning  Unhealthy  2s (x4 over 2m)  kubelet            "
        "spec.containers{shop}: Readiness probe failed: 503",
    ]
    assert events_section([], NOW) == "Events:  <none>\n"


def test_the_events_of_an_object_are_picked_as_kubectl_picks_them() -> None:
    pod = objects_pb2.Pod(metadata=meta_pb2.ObjectMeta(name="p", namespace="ns", uid="u"))
    assert event_selector(pod) == (
        "involvedObject.name=p,involvedObject.namespace=ns,involvedObject.kind=Pod,"
        "involvedObject.uid=u"
    )
