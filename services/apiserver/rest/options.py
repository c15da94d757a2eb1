"""Query parameters of reads (`ListOptions`) and the watch events they shape.

`list_options` reads labelSelector, fieldSelector, limit, continue, resourceVersion,
watch, allowWatchBookmarks, sendInitialEvents and timeoutSeconds, refusing a bad
value with a 400 that names it (a selector's own words from `kubelab.core.selectors`).

A watch follows Kubernetes' filtered-watch semantics (`watch_type`): with a
selector, an object that stops matching is sent as DELETED and one that starts
matching as ADDED. `sendInitialEvents=true` (kubectl's watch-list, which `kubectl
delete` waits with) ends its ADDED events with a BOOKMARK annotated
`k8s.io/initial-events-end: "true"` (`initial_events_end`); without it kubectl hangs.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubelab.core import selectors
from kubelab.core.kinds import KindInfo
from services.apiserver.logic import request_keys
from services.apiserver.rest import fields
from services.apiserver.rest.errors import bad_request
from services.apiserver.watch_window import watch_type as watch_type  # the cache applies it

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
# What Kubernetes' --min-request-timeout (1800 s) gives a watch that names no timeout.
DEFAULT_WATCH_SECONDS = 1800
_TRUE = ("true", "1")


@dataclass(frozen=True, slots=True)
class ListOptions:
    labels: selectors.Selector
    fields: fields.FieldSelector
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    watch: bool = False
    bookmarks: bool = False
    send_initial_events: bool | None = None
    timeout_seconds: int = DEFAULT_WATCH_SECONDS
    include_object: str = ""

    def matches(self, info: KindInfo, obj: Any) -> bool:
        return self.labels.matches(dict(obj.metadata.labels)) and self.fields.matches(obj)

    @property
    def initial_events(self) -> bool:
        """Whether a watch starts with the current state as ADDED events: when asked
        (sendInitialEvents), or by default with no resourceVersion or "0" (Kubernetes'
        "get state and start at most recent")."""
        if self.send_initial_events is not None:
            return self.send_initial_events
        return self.resource_version in ("", "0")


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in _TRUE


def _integer(query: Mapping[str, str], name: str, default: int) -> int:
    text = query.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f'{name}: Invalid value: "{text[:64]}": must be an integer') from None
    if value < 0:
        raise bad_request(f"{name}: Invalid value: {value}: must be greater than or equal to 0")
    return value


def list_options(query: Mapping[str, str], info: KindInfo) -> ListOptions:
    label_selector = selectors.parse_selector(query.get("labelSelector", ""))
    field_selector = fields.parse(query.get("fieldSelector", ""), info)
    resource_version = query.get("resourceVersion", "")
    if resource_version:
        request_keys.parse_resource_version(resource_version)
    send = query.get("sendInitialEvents")
    watch = _flag(query, "watch")
    if send is not None and not watch:
        raise bad_request("sendInitialEvents: Forbidden: sendInitialEvents is only for watch")
    return ListOptions(
        labels=label_selector,
        fields=field_selector,
        limit=_integer(query, "limit", 0),
        continue_token=query.get("continue", ""),
        resource_version=resource_version,
        watch=watch,
        bookmarks=_flag(query, "allowWatchBookmarks"),
        send_initial_events=None if send is None else send.lower() in _TRUE,
        timeout_seconds=_integer(query, "timeoutSeconds", DEFAULT_WATCH_SECONDS),
        include_object=query.get("includeObject", ""),
    )


def bookmark(info: KindInfo, resource_version: str, *, initial_end: bool) -> dict[str, Any]:
    """A BOOKMARK event's object: only kind, apiVersion and a resourceVersion."""
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if initial_end:
        metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": info.kind, "apiVersion": info.api_version, "metadata": metadata}
