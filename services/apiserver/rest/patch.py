"""PATCH: the four patch types, for every kind, through the registry's update path.

`application/merge-patch+json`, `application/json-patch+json` and
`application/strategic-merge-patch+json` are applied to the current object's JSON
by `services.apiserver.k8s.patches`; `application/apply-patch+yaml` is server-side
apply (`managed_fields.apply`: fieldManager required, `force`, 409 on a conflict
with another manager); any other Content-Type is a 415 before the body is read.

The patch runs inside `Registry.update` as its `change`: on every attempt, against
the object that attempt read, so a write that lands between read and write makes
the registry read again and re-apply the patch (Kubernetes' patch handler retries
the same way). What it produces is then an update like any other: defaults,
validation and its wording, the allocation transaction (a NodePort someone holds
is a 422 naming `spec.ports[0].nodePort`), compare-and-swap. A patch that sets
`metadata.resourceVersion` makes it a precondition: a 409 when stale, no retry.
Apply to an object that does not exist creates it (201), as in Kubernetes.

`fieldValidation` is checked on the object a patch produces (apply: on the
configuration), and only the fields kubelab's objects hold are applied, so
managedFields never claim a field the stored object cannot have. On `/status`
the patch changes only status (`subresource`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from kubelab.core import yaml12
from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.store import AlreadyExistsError, ConflictError, NotFoundError
from services.apiserver.k8s import managed_fields, openapi, patches
from services.apiserver.k8s.jsonvalue import JsonObject
from services.apiserver.logic import request_keys
from services.apiserver.registry import FieldsHook, Registry
from services.apiserver.rest import convert, field_managers, field_validation
from services.apiserver.rest.errors import ApiError, bad_request
from services.apiserver.rest.routing import Target
from services.apiserver.rest.subresources_status import decode_for

_CREATE_ATTEMPTS = 4


def _unsupported(content_type: str) -> ApiError:
    accepted = ", ".join(f'"{t}"' for t in patches.PATCH_TYPES)
    return ApiError(
        415,
        "UnsupportedMediaType",
        f'the body of the request was in an unknown format "{content_type}" - accepted media '
        f"types include: {accepted}",
    )


def _invalid_options(message: str, field: str, reason: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'PatchOptions.meta.k8s.io "" is invalid: {message}',
        {
            "kind": "PatchOptions",
            "group": "meta.k8s.io",
            "causes": [{"reason": reason, "message": message.split(": ", 1)[1], "field": field}],
        },
    )


def _force(request: web.Request, is_apply: bool) -> bool:
    given = request.query.get("force")
    if given is None:
        return False
    if not is_apply:
        raise _invalid_options(
            "force: Forbidden: may not be specified for non-apply patch",
            "force",
            "FieldValueForbidden",
        )
    if given not in ("true", "false", "1", "0", "True", "False"):
        raise bad_request(f'force: Invalid value: "{given[:64]}": must be a boolean')
    return given in ("true", "1", "True")


def _apply_body(raw: bytes) -> JsonObject:
    """An apply configuration: JSON (what kubectl and the Python client send) or YAML."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the apply configuration is not UTF-8 text") from None
    try:
        document: Any = json.loads(text)
    except RecursionError:
        raise bad_request("the apply configuration is nested too deeply") from None
    except ValueError:
        try:
            documents = list(yaml12.load_all(text))
        except Exception as err:  # yaml.YAMLError, RecursionError, a number Python refuses
            raise bad_request(f"error decoding YAML: {str(err)[:200]}") from None
        if len(documents) != 1:
            raise bad_request("the apply configuration must be one YAML document") from None
        document = documents[0]
    if not isinstance(document, dict):
        raise bad_request("the apply configuration must be an object")
    return document


def _precondition(patched: JsonObject, current: ApiObject, info: KindInfo) -> None:
    """A resourceVersion the patch set is a precondition (Kubernetes)."""
    meta = patched.get("metadata")
    wanted = meta.get("resourceVersion") if isinstance(meta, dict) else None
    have = current.metadata.resource_version
    if wanted and wanted != have:
        request_keys.parse_resource_version(str(wanted), "metadata.resourceVersion")
        raise ConflictError.modified(info.qualified_resource, current.metadata.name, int(have))


class Patcher:
    """One PATCH request: what it asks, the change it makes, the warnings it earned."""

    def __init__(self, request: web.Request, target: Target) -> None:
        self.target = target
        self.info = target.info
        self.subresource = target.subresource
        self.content_type = request.headers.get("Content-Type", "")
        if patches.media_type(self.content_type) not in patches.PATCH_TYPES:
            raise _unsupported(self.content_type)
        self.dry_run = field_validation.dry_run(request.query, "PatchOptions")
        self.is_apply = patches.is_apply(self.content_type)
        self.mode = field_validation.directive(request.query, "PatchOptions")
        self.force = _force(request, self.is_apply)
        if self.is_apply and not request.query.get("fieldManager"):
            raise _invalid_options(
                "fieldManager: Required value: is required for apply patch",
                "fieldManager",
                "FieldValueRequired",
            )
        self.manager = field_managers.manager_of(
            request.query, request.headers.get("User-Agent", ""), "PatchOptions"
        )
        self.warnings: tuple[str, ...] = ()
        self.body: Any = None
        self.config: JsonObject = {}

    def read(self, raw: bytes) -> None:
        if self.is_apply:
            config = _apply_body(raw)
            config.setdefault("apiVersion", self.info.api_version)
            config.setdefault("kind", self.info.kind)
            # Strict fails here, before anything is read or written.
            field_validation.check(config, self.info.kind, self.mode)
            known = openapi.known_fields_only(config, self.info.kind)
            assert isinstance(known, dict)
            self.config = known
            self.body = config
        else:
            self.body = convert.parse_json(raw)

    def _decode(self, document: JsonObject, checked_against: Any) -> ApiObject:
        target = self.target
        decoded = decode_for(
            document, self.info, namespace=target.namespace, name=target.name,
            subresource=self.subresource,
        )  # fmt: skip
        self.warnings = field_validation.check(
            checked_against, self.info.kind, self.mode, dropped=decoded.warnings
        ).warnings
        return decoded.object

    def change(self, current: ApiObject) -> ApiObject:
        """The registry's `change`: this patch applied to `current`."""
        live = convert.to_json(current)
        if self.is_apply:
            patched = managed_fields.apply(
                live, self.config, manager=self.manager, kind=self.info.kind,
                api_version=self.info.api_version, now=field_managers.now(), force=self.force,
                subresource=self.subresource,
            )  # fmt: skip
            checked_against: Any = self.body
        else:
            patched = patches.apply_patch(live, self.body, self.content_type, self.info.kind)
            checked_against = patched
        _precondition(patched, current, self.info)
        obj = self._decode(patched, checked_against)
        # Checked above; the registry must retry a lost compare-and-swap, not refuse it.
        obj.metadata.resource_version = ""
        return obj

    def created(self) -> ApiObject:
        """Apply to a missing object: the configuration alone, owned by its manager."""
        patched = managed_fields.apply(
            None, self.config, manager=self.manager, kind=self.info.kind,
            api_version=self.info.api_version, now=field_managers.now(), force=self.force,
        )  # fmt: skip
        obj = self._decode(patched, self.body)
        obj.metadata.resource_version = ""
        return obj

    def fields_hook(self) -> FieldsHook:
        if self.is_apply:
            return field_managers.keep
        return field_managers.update_hook(self.info, self.manager, self.subresource)


async def patch(
    registry: Registry, request: web.Request, target: Target
) -> tuple[ApiObject, int, tuple[str, ...]]:
    """The patched (or, by apply, created) object, the HTTP code and the warnings."""
    info = target.info
    request_keys.check_key(info.resource, target.namespace, target.name)
    patcher = Patcher(request, target)
    patcher.read(await request.read())
    # Names the object for `update`; each attempt writes `patcher.change(current)`.
    stub = info.message()
    stub.metadata.name = target.name
    stub.metadata.namespace = target.namespace if info.namespaced else ""
    for _ in range(_CREATE_ATTEMPTS):
        try:
            written, _ = await asyncio.shield(
                registry.update(
                    stub,
                    change=patcher.change,
                    fields=patcher.fields_hook(),
                    subresource=target.subresource,
                    dry_run=patcher.dry_run,
                )
            )
            return written, 200, patcher.warnings
        except NotFoundError:
            if not patcher.is_apply or target.subresource:
                raise
        try:
            created = await asyncio.shield(
                registry.create(
                    patcher.created(), fields=field_managers.keep, dry_run=patcher.dry_run
                )
            )
            return created, 201, patcher.warnings
        except AlreadyExistsError:
            continue  # created meanwhile: patch it
    raise ConflictError(f'{info.qualified_resource} "{target.name}" keeps changing; retry', 0)
