"""`deployments/<name>/scale`: a Deployment's replicas as an `autoscaling/v1` Scale.

What `kubectl scale deploy shop --replicas=6` uses: it reads the Deployment, then
PATCHes `/scale` with a merge patch `{"spec":{"replicas":6}}` and wants a Scale back
(`14-scale` in the wire recordings). GET answers the Scale, PUT replaces it, PATCH
patches its JSON (merge, JSON or strategic-merge patch: `services.apiserver.k8s.
patches`) and then writes like a PUT.

A write changes only the Deployment's `spec.replicas`, through `Registry.update`
(validation, generation, compare-and-swap), and records its field manager in
managedFields as every write of the HTTP front does: an Update entry with
subresource `scale` owning `spec.replicas` in the Deployment's apps/v1 terms, as
Kubernetes' ScaleHandler stores it (`kubectl scale` then shows as manager `kubectl`).
`dryRun=All` does all but the write (`kubectl scale --dry-run=server`).

A PUT's Scale carrying a resourceVersion, or a patch that sets one, is a precondition
on the Deployment (409 when stale); otherwise the write re-reads, re-applies the patch
and retries on a conflict, as Kubernetes' GuaranteedUpdate does: the controller writes
the Deployment's status all the time, and `kubectl scale` must not lose to it.

The Scale's `status` is the Deployment's (`replicas` it has, `selector` as text), as
Kubernetes' `scaleFromDeployment` fills it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from kubelab.core import kinds, selectors
from kubelab.core.errors import ErrorType, FieldError, format_invalid
from kubelab.store import ConflictError
from kubelab.v1 import objects_pb2
from services.apiserver.k8s import patches
from services.apiserver.k8s.jsonvalue import PatchError
from services.apiserver.logic import request_keys
from services.apiserver.registry import FieldsHook, Registry
from services.apiserver.rest import convert, field_managers, field_validation
from services.apiserver.rest.errors import (
    ApiError,
    bad_request,
    causes,
    method_not_allowed,
    unsupported_media_type,
)
from services.apiserver.rest.routing import Target

log = logging.getLogger(__name__)

_ATTEMPTS = 5


def scale_of(deployment: objects_pb2.Deployment) -> dict[str, Any]:
    """The Deployment as an autoscaling/v1 Scale."""
    meta = convert.to_json(deployment)["metadata"]
    shown = {
        k: meta[k]
        for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        if k in meta
    }
    replicas = deployment.spec.replicas if deployment.spec.HasField("replicas") else 1
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": shown,
        "spec": {"replicas": replicas},
        "status": {
            "replicas": deployment.status.replicas,
            "selector": str(selectors.from_label_selector(deployment.spec.selector)),
        },
    }


def replicas_of(scale: Any, name: str) -> tuple[int, str]:
    """(spec.replicas, metadata.resourceVersion) of a Scale body; ApiError when it is not
    one for `name` (400) or its replicas are not valid (422, Kubernetes' words)."""
    if not isinstance(scale, dict):
        raise bad_request("the body must be a Scale object")
    kind = scale.get("kind")
    if kind not in (None, "Scale"):
        raise bad_request(f'the body must be a Scale, not "{str(kind)[:64]}"')
    meta = scale.get("metadata") or {}
    if not isinstance(meta, dict):
        raise bad_request("metadata: must be an object")
    given = meta.get("name")
    if given not in (None, "", name):
        raise bad_request(
            f"the name of the object ({str(given)[:253]}) does not match the name on the URL "
            f"({name})"
        )
    version = meta.get("resourceVersion") or ""
    if not isinstance(version, str):
        raise bad_request("metadata.resourceVersion: must be a string")
    try:
        request_keys.parse_resource_version(version, "metadata.resourceVersion")
    except request_keys.InvalidRequestError as err:
        raise bad_request(str(err)) from None
    spec = scale.get("spec") or {}
    replicas = spec.get("replicas", 0) if isinstance(spec, dict) else None
    problem = None
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        problem = FieldError("spec.replicas", ErrorType.INVALID, "must be an integer", replicas)
    elif replicas < 0:
        problem = FieldError(
            "spec.replicas", ErrorType.INVALID, "must be greater than or equal to 0", replicas
        )
    elif replicas > 2**31 - 1:
        problem = FieldError("spec.replicas", ErrorType.INVALID, "must fit in 32 bits", replicas)
    if problem is not None:
        details = {"name": name, "group": "autoscaling", "kind": "Scale"}
        message = format_invalid("Scale.autoscaling", name, [problem])
        raise ApiError(422, "Invalid", message, {**details, "causes": causes([problem])})
    assert isinstance(replicas, int)
    return replicas, version


def replicas_after_patch(
    current: objects_pb2.Deployment, patch: Any, content_type: str, name: str
) -> tuple[int, str]:
    """(spec.replicas, precondition) of `current`'s Scale patched by `patch`. Only a
    resourceVersion the patch itself sets is a precondition, as in Kubernetes' patch
    handler: the one the Scale was read at is not, so a patch that lost a race with the
    controller's status write is applied again to what it finds, not refused."""
    try:
        scale = patches.apply_patch(scale_of(current), patch, content_type, "Scale")
    except PatchError as err:
        if err.status_code == 415:
            raise unsupported_media_type(content_type) from None
        reason = "Invalid" if err.status_code == 422 else "BadRequest"
        raise ApiError(err.status_code, reason, str(err)) from None
    replicas, version = replicas_of(scale, name)
    return replicas, "" if version == current.metadata.resource_version else version


class DeploymentScale:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        request_keys.check_key(kinds.DEPLOYMENTS.resource, target.namespace, target.name)
        if request.method == "GET":
            return _json(scale_of(await self._read(target)))
        if request.method not in ("PUT", "PATCH"):
            raise method_not_allowed(request.method)
        options = "UpdateOptions" if request.method == "PUT" else "PatchOptions"
        dry_run = field_validation.dry_run(request.query, options)
        manager = field_managers.manager_of(
            request.query, request.headers.get("User-Agent", ""), options
        )
        hook = field_managers.update_hook(kinds.DEPLOYMENTS, manager, "scale")
        raw = await request.read()
        content_type = request.headers.get("Content-Type", "")
        body = convert.parse_json(raw)
        if request.method == "PUT":
            media = patches.media_type(content_type)
            if media not in ("", "application/json"):
                raise unsupported_media_type(content_type)
            replicas, version = replicas_of(body, target.name)
            write = self._write(target, lambda _: (replicas, version), hook, dry_run)
        else:
            if patches.is_apply(content_type):
                raise unsupported_media_type(content_type)

            def patched(current: objects_pb2.Deployment) -> tuple[int, str]:
                return replicas_after_patch(current, body, content_type, target.name)

            write = self._write(target, patched, hook, dry_run)
        # Shielded: a client that hangs up does not cut a write in half.
        written = await asyncio.shield(write)
        return _json(scale_of(written))

    async def _read(self, target: Target) -> objects_pb2.Deployment:
        return await self.store.get(kinds.DEPLOYMENTS, target.namespace, target.name)

    async def _write(
        self, target: Target, wanted: Any, fields: FieldsHook, dry_run: bool
    ) -> objects_pb2.Deployment:
        """Set spec.replicas to what `wanted(current)` says, at `current`'s version,
        recording the change in managedFields with `fields`."""
        for _ in range(_ATTEMPTS):
            current = await self._read(target)
            replicas, version = wanted(current)
            if version and version != current.metadata.resource_version:
                raise ConflictError.modified(
                    kinds.DEPLOYMENTS.qualified_resource,
                    target.name,
                    int(current.metadata.resource_version),
                )
            if current.spec.HasField("replicas") and current.spec.replicas == replicas:
                return current
            changed = objects_pb2.Deployment()
            changed.CopyFrom(current)
            changed.spec.replicas = replicas
            try:
                written, _ = await self.registry.update(changed, fields=fields, dry_run=dry_run)
            except ConflictError:
                if version:
                    raise
                continue
            if not dry_run:
                log.info(
                    "scaled to %d replicas",
                    replicas,
                    extra={"deployment": f"{target.namespace}/{target.name}"},
                )
            assert isinstance(written, objects_pb2.Deployment)
            return written
        raise ConflictError(f'deployments.apps "{target.name}" keeps changing; retry', 0)


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=convert.dumps(body), content_type="application/json")
