"""kubelab's protobuf objects <-> the Kubernetes JSON of the HTTP API.

Out (`to_json`): `manifests.to_kubernetes_dict` (Kubernetes' JSON names, int64 and
numeric int-or-string values as numbers, apiVersion/kind per kind), then the fields
Kubernetes always writes that proto3 JSON leaves out at their zero value
(`_ALWAYS`): a ContainerStatus's `ready: false` and `restartCount: 0`, an exit code
0. Client libraries that check required fields (the official Python client's models
do) refuse an object without them. Lists always carry `items`, even empty.

In (`from_body`): the body must be a JSON object. apiVersion and kind default to the
URL's (the Python client leaves them out); others are a 400, as are a namespace or
name that differ from the URL's. The rest is `manifests.load_object`: the same
shape check as `kubelab apply -f` (Kubernetes' field names, int-or-string values,
type errors named by path), and fields kubelab does not implement dropped with a
warning, which the server sends as `Warning` headers.

Pure: no I/O.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from kubelab.core import manifests
from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.core.manifests_shape import descriptor_of, fields_of, is_map, message_type_of
from services.apiserver.rest.errors import bad_request, causes

_TIMESTAMP = "google.protobuf.Timestamp"

# Fields Kubernetes always prints (no `omitempty` in its Go types) and client models
# require, by proto message: JSON name -> value when proto3 left it out.
_ALWAYS: dict[str, dict[str, Any]] = {
    "kubelab.v1.ContainerStatus": {
        "name": "",
        "ready": False,
        "restartCount": 0,
        "image": "",
        "imageID": "",
    },
    "kubelab.v1.ContainerStateTerminated": {"exitCode": 0},
    "kubelab.v1.DaemonEndpoint": {"Port": 0},
    "kubelab.v1.Condition": {"type": "", "status": ""},
    "kubelab.v1.Endpoint": {"addresses": []},
    "kubelab.v1.EndpointSlice": {"addressType": "", "endpoints": []},
    "kubelab.v1.NodeAddress": {"type": "", "address": ""},
    "kubelab.v1.OwnerReference": {"apiVersion": "", "kind": "", "name": "", "uid": ""},
    "kubelab.v1.LabelSelectorRequirement": {"key": "", "operator": ""},
    "kubelab.v1.Container": {"name": ""},
    "kubelab.v1.ContainerPort": {"containerPort": 0},
    "kubelab.v1.ServicePort": {"port": 0},
    "kubelab.v1.EnvVar": {"name": ""},
    "kubelab.v1.HTTPHeader": {"name": "", "value": ""},
    "kubelab.v1.PodIP": {"ip": ""},
    "kubelab.v1.PodSpec": {"containers": []},
    "kubelab.v1.DeploymentSpec": {"selector": {}, "template": {}},
}


def _fill(body: dict[str, Any], descriptor: Descriptor) -> None:
    for key, value in _ALWAYS.get(descriptor.full_name, {}).items():
        if key not in body:
            body[key] = copy.copy(value)
    inner_of = _inner_messages(descriptor)
    for key, value in body.items():
        inner = inner_of.get(key)
        if inner is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                _fill(item, inner)


_INNER: dict[str, dict[str, Descriptor]] = {}


def _inner_messages(descriptor: Descriptor) -> dict[str, Descriptor]:
    """JSON name -> message type of the fields `_fill` descends into (messages, not
    maps nor Timestamps), planned once per message type: this runs for every object
    the HTTP API answers."""
    found = _INNER.get(descriptor.full_name)
    if found is None:
        found = {}
        for key, field in fields_of(descriptor).items():
            if is_map(field) or field.cpp_type != FieldDescriptor.CPPTYPE_MESSAGE:
                continue
            inner = message_type_of(field)
            if inner.full_name not in (_TIMESTAMP, "google.protobuf.Struct"):
                found[key] = inner
        _INNER[descriptor.full_name] = found
    return found


def to_json(obj: Message) -> dict[str, Any]:
    """The object as the Kubernetes API answers it."""
    body = manifests.to_kubernetes_dict(obj)
    _fill(body, descriptor_of(obj))
    return body


def list_json(
    info: KindInfo, items: list[dict[str, Any]], resource_version: str, continue_token: str = ""
) -> dict[str, Any]:
    """A `<Kind>List`: Kubernetes leaves apiVersion/kind off the items of a typed list."""
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    for item in items:
        item.pop("apiVersion", None)
        item.pop("kind", None)
    return {
        "kind": f"{info.kind}List",
        "apiVersion": info.api_version,
        "metadata": metadata,
        "items": items,
    }


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Decoded:
    object: ApiObject
    # Paths of fields kubelab dropped (it does not implement them).
    warnings: tuple[str, ...]


def _check_type(document: dict[str, Any], info: KindInfo) -> None:
    api_version = document.setdefault("apiVersion", info.api_version)
    kind = document.setdefault("kind", info.kind)
    if api_version != info.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({info.api_version})"
        )
    if kind != info.kind:
        raise bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({info.kind})"
        )


def parse_json(raw: bytes, object_pairs_hook: Any = None) -> Any:
    """A request body as JSON; a 400 naming the problem when it is not."""
    try:
        return json.loads(raw, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise bad_request("couldn't decode the body: nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, bad UTF-8, a number Python refuses
        raise bad_request(f"couldn't get version/kind; json parse error: {err}") from None


def from_body(raw: bytes, info: KindInfo, *, namespace: str, name: str = "") -> Decoded:
    """The object a create (`name` empty) or an update of `name` sent."""
    document = parse_json(raw)
    if not isinstance(document, dict):
        raise bad_request("the body must be a JSON object")
    return from_document(document, info, namespace=namespace, name=name)


def from_document(
    document: dict[str, Any], info: KindInfo, *, namespace: str, name: str = ""
) -> Decoded:
    """`from_body` for an already parsed body (or a patched object); `document` may be
    filled in (apiVersion, kind, metadata.namespace)."""
    _check_type(document, info)
    metadata = document.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise bad_request("metadata: must be an object")
    if info.namespaced:
        given = metadata.get("namespace") or namespace
        if given != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        metadata["namespace"] = namespace
    if name:
        given_name = metadata.setdefault("name", name)
        if given_name != name:
            raise bad_request(
                f"the name of the object ({given_name}) does not match the name on the URL ({name})"
            )
    try:
        loaded = manifests.load_object(document, "request body")
    except manifests.ManifestError as err:
        details = {"causes": causes(err.field_errors)} if err.field_errors else None
        raise bad_request(str(err).removeprefix("request body: "), details) from None
    return Decoded(loaded.object, loaded.warnings)
