"""The `/status` subresource of services, pods and deployments, scoped as Kubernetes' is.

GET answers the whole object (with its live status, as a GET of the object does);
PUT and PATCH write through `Registry.update(subresource="status")`: only status
changes, whatever else the body holds (Kubernetes' status strategies reset spec and
metadata), and managedFields record the manager with subresource `status`. A write to
the main resource keeps status (the registry's `_carry_status`).

kubelab's own actors keep writing status as before (the controller a Deployment's and
a LoadBalancer Service's, node agents a pod's leased status), so a status written
here is theirs to overwrite; a pod's shown status is what its node agent reports.

`decode_for` is the decoder every write of the HTTP front shares: the body as an
object, with its status when the write is to /status (a manifest's status is
otherwise dropped, as `kubectl apply` ignores it).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from kubelab.core import errors, kinds
from kubelab.core.kinds import KindInfo
from kubelab.core.manifests_shape import ShapeCheck, descriptor_of, message_type_of
from services.apiserver.rest import convert
from services.apiserver.rest.errors import bad_request, causes
from services.apiserver.rest.routing import NOT_FOUND

STATUS_KINDS = frozenset({kinds.SERVICES.resource, kinds.PODS.resource, kinds.DEPLOYMENTS.resource})


def check_target(info: KindInfo, subresource: str) -> None:
    """A 404 for a subresource this module does not serve."""
    if subresource != "status" or info.resource not in STATUS_KINDS:
        raise NOT_FOUND


def decode_for(
    document: dict[str, Any],
    info: KindInfo,
    *,
    namespace: str,
    name: str = "",
    subresource: str = "",
) -> convert.Decoded:
    status = document.get("status") if subresource == "status" else None
    decoded = convert.from_document(document, info, namespace=namespace, name=name)
    if subresource != "status":
        return decoded
    obj = decoded.object
    field = descriptor_of(obj).fields_by_name.get("status")
    if field is None:
        raise NOT_FOUND
    if status is None:
        obj.ClearField("status")
        return decoded
    walk = ShapeCheck()
    cleaned = walk.message(status, message_type_of(field), "status")
    if walk.errors or cleaned is None:
        message = errors.format_invalid(info.kind, name, walk.errors)
        raise bad_request(message, {"causes": causes(walk.errors)})
    try:
        json_format.ParseDict(cleaned, obj.status)  # type: ignore[union-attr]
    except (json_format.ParseError, ValueError, TypeError) as err:
        raise bad_request(f'{info.kind} "{name}" is invalid: {err}') from None
    return convert.Decoded(obj, decoded.warnings + tuple(walk.warnings))
