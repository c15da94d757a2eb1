"""The `Events:` section of `kubelab describe`, as kubectl's `DescribeEvents` prints it.

The events of one object are fetched with kubectl's field selector
(`involvedObject.name`, `.namespace`, `.kind`, `.uid`), from the object's
namespace (every namespace for a cluster-scoped object: a Node's events are in
`default`). They are listed oldest first by their last occurrence; AGE says
`10s`, or `10s (x4 over 2m)` for an event seen 4 times, `<unknown>` without a
timestamp, and a section without events reads `Events:  <none>`. A container's
event shows which container first (`spec.containers{shop}: Started container shop`),
as kubectl 1.37 prints it. The table is aligned like kubectl's tabwriter in
describe (two spaces between columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from kubelab.client import Client
from kubelab.core import kinds
from kubelab.core.kinds import ApiObject
from kubelab.core.printing import NONE, age, timestamp
from kubelab.v1 import objects_pb2

_HEADER = ("Type", "Reason", "Age", "From", "Message")


def _interval(event: objects_pb2.Event, now: datetime) -> str:
    first = age(event.event_time, now)
    if timestamp(event.event_time) is None:
        first = age(event.first_timestamp, now)
    if event.count > 1:
        return f"{age(event.last_timestamp, now)} (x{event.count} over {first})"
    return first


def _last_seen(event: objects_pb2.Event) -> tuple[int, int]:
    stamp = event.last_timestamp if timestamp(event.last_timestamp) else event.first_timestamp
    return stamp.seconds, stamp.nanos


def events_section(events: Sequence[objects_pb2.Event], now: datetime) -> str:
    if not events:
        return f"Events:  {NONE}\n"
    rows = [list(_HEADER), ["----", "------", "----", "----", "-------"]]
    for event in sorted(events, key=_last_seen):
        source = event.source.component or event.reporting_component
        message = event.message.strip()
        if event.involved_object.field_path:
            message = f"{event.involved_object.field_path}: {message}"
        rows.append([event.type, event.reason, _interval(event, now), source, message])
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER) - 1)]
    lines = ["Events:"]
    for cells in rows:
        padded = [cell.ljust(widths[i] + 2) for i, cell in enumerate(cells[:-1])]
        lines.append(("  " + "".join(padded) + cells[-1]).rstrip())
    return "\n".join(lines) + "\n"


def event_selector(obj: ApiObject) -> str:
    """kubectl's field selector for the events of `obj`."""
    meta = obj.metadata
    terms = [
        f"involvedObject.name={meta.name}",
        f"involvedObject.namespace={meta.namespace}",
        f"involvedObject.kind={kinds.info_of(obj).kind}",
    ]
    if meta.uid:
        terms.append(f"involvedObject.uid={meta.uid}")
    return ",".join(terms)


async def object_events(client: Client, obj: ApiObject) -> list[objects_pb2.Event]:
    found, _ = await client.list(
        kinds.EVENTS.resource, obj.metadata.namespace, field_selector=event_selector(obj)
    )
    return [e for e in found if isinstance(e, objects_pb2.Event)]
