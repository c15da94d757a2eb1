"""POST and PUT bodies in Kubernetes protobuf (`application/vnd.kubernetes.protobuf`).

kubectl's `create namespace|deployment|service` send their object as protobuf
unasked (`services.apiserver.k8s.k8s_protobuf` says why and how it is decoded).
The body becomes the JSON object it encodes and takes the JSON path from there, so
field validation, defaults and their wording are the same whichever form came. The
answer is JSON, which kubectl's `Accept` (protobuf, then JSON) allows.

A body that is not what it claims is a 400 naming the problem; a kind kubelab does
not decode from protobuf, or a `/status` write (its status is not decoded), a 415
that says to send JSON.

Pure: no I/O.
"""

from __future__ import annotations

from services.apiserver.k8s import k8s_protobuf
from services.apiserver.rest import convert
from services.apiserver.rest.errors import ApiError, bad_request, unsupported_media_type
from services.apiserver.rest.routing import Target

PROTOBUF = "application/vnd.kubernetes.protobuf"


JSON = "application/json"


def json_bytes(raw: bytes, content_type: str, target: Target | None = None) -> bytes:
    """A request body as JSON bytes, whichever of the two forms kubectl sends it in (a
    resource's write names its `target`); any other media type is a 415."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == PROTOBUF:
        return as_json(raw, target)
    if media not in ("", JSON):
        raise unsupported_media_type(content_type, (JSON, PROTOBUF))
    return raw


def _unsupported(why: str) -> ApiError:
    message = f"{why}; accepted media types include: application/json"
    return ApiError(415, "UnsupportedMediaType", message)


def as_json(raw: bytes, target: Target | None = None) -> bytes:
    """The JSON bytes of the object a protobuf body carries (to `target`, when it is a
    resource's; a self-review's has none)."""
    if target is not None and target.subresource:
        raise _unsupported(f"a protobuf body for /{target.subresource} is not decoded")
    try:
        document = k8s_protobuf.decode(raw)
    except k8s_protobuf.UndecodedKindError as err:
        raise _unsupported(str(err)) from None
    except k8s_protobuf.ProtobufError as err:
        raise bad_request(f"the protobuf body could not be decoded: {err}") from None
    return convert.dumps(document)
