"""Event correlation: what one recorded occurrence becomes in the store (client-go's
EventCorrelator, without I/O).

A component records an occurrence (an object, Normal/Warning, a reason, a message);
`Correlator.observe` answers with the Event to write, or None:

* **dedup** — the same involvedObject, type, reason and message from the same
  source within `window` seconds of its last occurrence is *the same event*: the
  answer is that event again, its `count` one higher and `lastTimestamp` now
  (client-go's eventLogger, `kubectl describe`'s "x4 over 2m"). Older than the
  window, or evicted from the bounded cache, it starts a new event;
* **spam filter** — every occurrence (new or repeated) takes a token from a bucket
  per source and involved object: `burst` tokens, refilled at one per
  `refill_seconds` (client-go's defaults: 25, one per 5 minutes). An empty bucket
  drops the occurrence (None): a crash-looping pod cannot flood etcd.

client-go also folds *similar* events (same reason, different messages) into one
"(combined from similar events)" after 10 in 10 minutes; kubelab does not.

Event names are client-go's: `<involved name>.<hex nanoseconds>`; one correlator
never hands out the same nanosecond twice, so two events begun in one clock tick
(a probe failing twice at once) do not share a name. A cluster-scoped object's events (a Node's) go
to the `default` namespace, as Kubernetes puts them.

State is two bounded LRU maps; time is the caller's (`now`, epoch seconds). Pure:
no I/O, no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from kubelab.core import kinds
from kubelab.core.kinds import ApiObject
from kubelab.core.pods import to_timestamp
from kubelab.v1 import meta_pb2, objects_pb2

NORMAL = "Normal"
WARNING = "Warning"

# client-go's defaults (tools/record/events_cache.go).
WINDOW_SECONDS = 600.0
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0
CACHE_SIZE = 4096
_NAME_MAX = 253
_SUFFIX = 17  # "." and up to 16 hex digits


@dataclass(frozen=True, slots=True)
class Source:
    """Who records: `component` (kubelet, default-scheduler, ...) and `host` (a node)."""

    component: str
    host: str = ""


@dataclass(frozen=True, slots=True)
class Occurrence:
    involved: meta_pb2.ObjectReference
    type: str
    reason: str
    message: str


@dataclass(slots=True)
class _Seen:
    name: str
    namespace: str
    count: int
    first: float
    last: float


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


def event_namespace(involved: meta_pb2.ObjectReference) -> str:
    return involved.namespace or "default"


def event_name(involved_name: str, nanos: int) -> str:
    return f"{involved_name[: _NAME_MAX - _SUFFIX]}.{nanos:x}"


def _ref_key(ref: meta_pb2.ObjectReference) -> tuple[str, ...]:
    return (ref.kind, ref.namespace, ref.name, ref.uid, ref.api_version, ref.field_path)


class Correlator:
    def __init__(
        self,
        source: Source,
        *,
        window: float = WINDOW_SECONDS,
        burst: int = SPAM_BURST,
        refill_seconds: float = SPAM_REFILL_SECONDS,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.source = source
        self.window = window
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.cache_size = cache_size
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._buckets: OrderedDict[tuple[str, ...], _Bucket] = OrderedDict()
        self._last_nanos = 0

    def _allowed(self, involved: meta_pb2.ObjectReference, now: float) -> bool:
        key = _ref_key(involved)[:5]
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
        refill = max(now - bucket.at, 0.0) / self.refill_seconds
        bucket.tokens, bucket.at = min(float(self.burst), bucket.tokens + refill), now
        self._buckets[key] = bucket
        if len(self._buckets) > self.cache_size:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def observe(self, occurrence: Occurrence, now: float) -> objects_pb2.Event | None:
        """The Event to write for `occurrence` at `now`, or None (the spam filter drops it)."""
        involved = occurrence.involved
        if not self._allowed(involved, now):
            return None
        key = (*_ref_key(involved), occurrence.type, occurrence.reason, occurrence.message)
        seen = self._seen.pop(key, None)
        if seen is None or now - seen.last > self.window:
            self._last_nanos = max(self._last_nanos + 1, int(now * 1e9))
            name = event_name(involved.name, self._last_nanos)
            seen = _Seen(name, event_namespace(involved), 0, now, now)
        seen.count += 1
        seen.last = now
        self._seen[key] = seen
        if len(self._seen) > self.cache_size:
            self._seen.popitem(last=False)
        return self._event(occurrence, seen)

    def _event(self, occurrence: Occurrence, seen: _Seen) -> objects_pb2.Event:
        event = objects_pb2.Event(
            api_version="v1",
            kind="Event",
            metadata=meta_pb2.ObjectMeta(name=seen.name, namespace=seen.namespace),
            involved_object=occurrence.involved,
            reason=occurrence.reason,
            message=occurrence.message,
            source=objects_pb2.EventSource(component=self.source.component, host=self.source.host),
            count=seen.count,
            type=occurrence.type,
            reporting_component=self.source.component,
            reporting_instance=self.source.host,
        )
        # Whole seconds, as Kubernetes serialises metav1.Time.
        event.first_timestamp.CopyFrom(to_timestamp(float(int(seen.first))))
        event.last_timestamp.CopyFrom(to_timestamp(float(int(seen.last))))
        return event


def reference(obj: ApiObject, *, field_path: str = "") -> meta_pb2.ObjectReference:
    """An ObjectReference to an API object, its kind and apiVersion from its type (an
    object a controller wrote need not carry them)."""
    info = kinds.info_of(obj)
    meta = obj.metadata
    return meta_pb2.ObjectReference(
        kind=info.kind,
        api_version=info.api_version,
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        resource_version=meta.resource_version,
        field_path=field_path,
    )
