"""The wire shapes of the read-only `endpoints` resource: its paths, Tables, lists,
list pages, bookmarks and refusals.

Paths are the core group's (`/api/v1/endpoints`, `/api/v1/namespaces/<ns>/endpoints`
and `.../endpoints/<name>`); `parse` answers None for any other path, so the kinds
kubelab stores keep `routing` to themselves. The Table has Kubernetes' columns
(NAME, ENDPOINTS, AGE: `printEndpoints`). A list page is cut from the Endpoints of one
snapshot of the slices, sorted by key, and its continue token is Kubernetes' (the
snapshot's revision and the key to start after), so every page of a list is one
consistent state, as with stored kinds. Every answer carries Kubernetes' deprecation
warning for v1 Endpoints (1.33+), which kubectl prints.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import unquote

from kubelab.core import kinds, paging, printing
from services.apiserver.k8s.endpoints_mirror import (
    API_VERSION,
    KIND,
    RESOURCE,
    Endpoints,
    endpoints_cell,
)
from services.apiserver.logic.request_keys import (
    InvalidRequestError,
    name_errors,
    namespace_errors,
)
from services.apiserver.rest.errors import ApiError
from services.apiserver.rest.options import INITIAL_EVENTS_END, ListOptions
from services.apiserver.rest.tables import Column, table_body

DEPRECATION = "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"
VERBS = ("get", "list", "watch")
SHORT_NAMES = ("ep",)
# What list_options needs a kind for is its selectable fields: Endpoints select on
# metadata.name and metadata.namespace only, the fields every kind has, as slices do.
OPTIONS_KIND = kinds.ENDPOINTSLICES

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column(
        "Endpoints",
        description="The set of all endpoints is the union of all subsets. Addresses are "
        "placed into subsets according to the IPs they share.",
    ),
    Column("Age", description="CreationTimestamp is when this object was created."),
)


@dataclass(frozen=True, slots=True)
class Target:
    namespace: str  # "" for a list across namespaces
    name: str = ""  # "" for the collection


def parse(path: str) -> Target | None:
    """The endpoints a path names; None when it names something else. A subresource
    or a name without a namespace is not served (404)."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[:2] != ["api", "v1"]:
        return None
    rest = parts[2:]
    if rest == [RESOURCE]:
        return Target("")
    if len(rest) < 3 or rest[0] != "namespaces" or rest[2] != RESOURCE:
        return None
    if len(rest) > 4 or not all(rest):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Target(rest[1], rest[3] if len(rest) == 4 else "")


def check(target: Target) -> None:
    """A namespace or name no Service can have is the client's mistake (400)."""
    found = namespace_errors(target.namespace)
    if target.name:
        found += name_errors(target.name)
    if found:
        raise InvalidRequestError(found)


def read_only(method: str, name: str) -> ApiError:
    """What every write answers: Kubernetes' 405, saying why."""
    what = f'endpoints "{name}"' if name else "endpoints"
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({method} {what}): "
        "endpoints are read-only in kubelab, derived from the Service's EndpointSlices; "
        "change the Service or its pods instead",
        {"name": name, "kind": RESOURCE} if name else {"kind": RESOURCE},
    )


def not_found(name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'endpoints "{name}" not found', {"name": name, "kind": RESOURCE}
    )


class _Meta(NamedTuple):
    name: str
    namespace: str
    labels: Mapping[str, str]


class _View(NamedTuple):
    """What ListOptions' selectors read of an object: its metadata."""

    metadata: _Meta


def matches(opts: ListOptions, endpoints: Endpoints) -> bool:
    meta = endpoints["metadata"]
    view = _View(_Meta(meta["name"], meta["namespace"], meta.get("labels", {})))
    return opts.matches(OPTIONS_KIND, view)


def relative_key(endpoints: Endpoints, namespace: str) -> str:
    """The object's key under the list's prefix, as a continue token names it."""
    meta = endpoints["metadata"]
    return meta["name"] if namespace else f"{meta['namespace']}/{meta['name']}"


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Endpoints]
    continue_token: str


def page(
    items: Sequence[Endpoints], namespace: str, revision: int, *, start: str, limit: int
) -> Page:
    """The items (sorted by key) from `start` on, at most `limit` (0: all), and the
    token for the rest."""
    rest = sorted(
        (e for e in items if relative_key(e, namespace) >= start),
        key=lambda e: relative_key(e, namespace),
    )
    if not limit or len(rest) <= limit:
        return Page(rest, "")
    last = relative_key(rest[limit - 1], namespace)
    token = paging.encode_continue(paging.Continue(revision, paging.next_start(last)))
    return Page(rest[:limit], token)


def list_json(items: Sequence[Endpoints], revision: int, continue_token: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"resourceVersion": str(revision)}
    if continue_token:
        metadata["continue"] = continue_token
    shown = [{k: v for k, v in e.items() if k not in ("kind", "apiVersion")} for e in items]
    return {
        "kind": f"{KIND}List",
        "apiVersion": API_VERSION,
        "metadata": metadata,
        "items": shown,
    }


def _age(endpoints: Endpoints, now: datetime) -> str:
    created = endpoints["metadata"].get("creationTimestamp")
    if not created:
        return "<unknown>"
    when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    return printing.format_age((now - when).total_seconds())


def row(endpoints: Endpoints, now: datetime, include: str) -> dict[str, Any]:
    cells = [endpoints["metadata"]["name"], endpoints_cell(endpoints), _age(endpoints, now)]
    out: dict[str, Any] = {"cells": cells}
    if include == "Object":
        out["object"] = endpoints
    elif include == "Metadata":
        out["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": endpoints["metadata"],
        }
    return out


def table(
    items: Sequence[Endpoints],
    now: datetime,
    *,
    resource_version: str,
    continue_token: str = "",
    include: str = "Metadata",
    with_columns: bool = True,
) -> dict[str, Any]:
    return table_body(
        [row(e, now, include) for e in items],
        COLUMNS if with_columns else None,
        resource_version=resource_version,
        continue_token=continue_token,
    )


def bookmark(revision: int, *, initial_end: bool) -> dict[str, Any]:
    metadata: dict[str, Any] = {"resourceVersion": str(revision)}
    if initial_end:
        metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": KIND, "apiVersion": API_VERSION, "metadata": metadata}


def discovery_entry(*, aggregated: bool) -> dict[str, Any]:
    """The resource's entry in `/api` (aggregated, apidiscovery v2) or `/api/v1`."""
    if aggregated:
        return {
            "resource": RESOURCE,
            "responseKind": {"group": "", "version": API_VERSION, "kind": KIND},
            "scope": "Namespaced",
            "singularResource": RESOURCE,
            "verbs": list(VERBS),
            "shortNames": list(SHORT_NAMES),
        }
    return {
        "name": RESOURCE,
        "singularName": RESOURCE,
        "namespaced": True,
        "kind": KIND,
        "verbs": list(VERBS),
        "shortNames": list(SHORT_NAMES),
    }
