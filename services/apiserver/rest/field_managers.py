"""managedFields for the HTTP front's writes: who set which field.

Every write through the Kubernetes API records its field manager, as Kubernetes'
fieldmanager does, by calling the pure `services.apiserver.k8s.managed_fields` on
the objects' JSON:

- POST, PUT and every PATCH but apply: `update_hook` is the registry's `fields`
  hook, run on each attempt after defaults and before allocation, so a defaulted
  `spec.type` belongs to the manager that created the Service and an allocated
  `spec.clusterIP` to nobody (Kubernetes allocates after the field manager ran);
- server-side apply computes the merged object and its managedFields in one step
  (`apply_object`); the registry then keeps them as they are (`keep`).

The manager is the `fieldManager` parameter, else the User-Agent's product
(`OpenAPI-Generator` for the Python client), as Kubernetes defaults it; apply
requires the parameter. Writes through gRPC (kubelab's CLI) are no manager's: the
registry keeps the managedFields it finds (`registry` docstring).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from multidict import MultiMapping

from kubelab.core import dict_proto
from kubelab.core.kinds import ApiObject, KindInfo
from services.apiserver.k8s import managed_fields
from services.apiserver.k8s.jsonvalue import JsonObject
from services.apiserver.registry import FieldsHook
from services.apiserver.rest import convert
from services.apiserver.rest.errors import ApiError

# Kubernetes' limit on a field manager's name (ValidateFieldManager).
MAX_MANAGER = 128


def manager_of(query: MultiMapping[str], user_agent: str, options_kind: str) -> str:
    given = query.get("fieldManager", "")
    if len(given) > MAX_MANAGER or any(not c.isprintable() for c in given):
        message = (
            f'fieldManager: Invalid value: "{given[:MAX_MANAGER]}": must be at most '
            f"{MAX_MANAGER} printable characters"
        )
        raise ApiError(
            422,
            "Invalid",
            f'{options_kind}.meta.k8s.io "" is invalid: {message}',
            {"kind": options_kind, "group": "meta.k8s.io"},
        )
    if given:
        return given
    return user_agent.split("/", 1)[0][:MAX_MANAGER]


def now() -> datetime:
    return datetime.now(UTC)


def set_managed(obj: ApiObject, entries: Any) -> None:
    """Put `metadata.managedFields` (a JSON list, as `managed_fields` encodes it) into
    the object. By hand rather than `json_format.ParseDict`, which costs as much as the
    rest of a create's bookkeeping."""
    managed = obj.metadata.managed_fields
    del managed[:]
    for item in entries or []:
        entry = managed.add(
            manager=item.get("manager", ""),
            operation=item.get("operation", ""),
            api_version=item.get("apiVersion", ""),
            fields_type=item.get("fieldsType", ""),
            subresource=item.get("subresource", ""),
        )
        if item.get("time"):
            dict_proto.set_time(entry.time, item["time"])
        fields = item.get("fieldsV1")
        if isinstance(fields, dict):
            dict_proto.fill_struct(fields, entry.fields_v1)


def managed_json(obj: JsonObject) -> Any:
    meta = obj.get("metadata")
    return meta.get("managedFields") if isinstance(meta, dict) else None


def update_hook(info: KindInfo, manager: str, subresource: str = "") -> FieldsHook:
    """The registry's `fields` hook for an Update by `manager`."""

    def record(current: ApiObject | None, new: ApiObject) -> None:
        live = convert.to_json(current) if current is not None else None
        entries = managed_fields.update_managed(
            live,
            convert.to_json(new),
            manager=manager,
            kind=info.kind,
            api_version=info.api_version,
            now=now(),
            subresource=subresource,
        )
        set_managed(new, entries)

    return record


def keep(current: ApiObject | None, new: ApiObject) -> None:
    """The `fields` hook of an apply: its managedFields are already the new ones."""
