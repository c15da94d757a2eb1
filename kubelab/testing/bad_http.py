"""Generated HTTP requests for the Kubernetes API's bad-input campaign: any method, a path
near or far from the API's (kinds, names that are not names, subresources that do not
exist), odd query parameters, any content type, bodies that are damaged manifests, random
bytes or nothing, and headers a client should not send (impersonation, a garbage bearer
token). Drawn with hypothesis through `badinput.examples`, so a run is the same every time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import strategies as st

from kubelab.core import kinds
from kubelab.testing import badinput

_PREFIXES = (
    "/api/v1", "/apis/apps/v1", "/apis/discovery.k8s.io/v1", "/apis/rbac.authorization.k8s.io/v1",
    "/apis/authorization.k8s.io/v1", "/apis/authentication.k8s.io/v1", "/api", "/apis", "/version",
    "/openapi/v3", "/openapi/v3/api/v1", "/", "/healthz", "/api/v2", "/apis/apps",
)  # fmt: skip
_RESOURCES = (
    *(info.resource for info in kinds.ALL_KINDS),
    "endpoints", "selfsubjectaccessreviews", "selfsubjectreviews", "secrets", "Services", "",
)  # fmt: skip
_NAMES = ("shop", "default", "kube-system", "..", ".", "%2F", "a%00b", "ü", "x" * 300, "-", "a b")
_SUBRESOURCES = ("status", "scale", "log", "token", "exec", "proxy", "x", "")
_QUERY_KEYS = (
    "watch", "labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
    "resourceVersionMatch", "dryRun", "fieldManager", "fieldValidation", "timeoutSeconds",
    "propagationPolicy", "gracePeriodSeconds", "sendInitialEvents", "force", "container",
    "tailLines", "follow",
)  # fmt: skip
_QUERY_VALUES = ("", "true", "All", "0", "-1", "1e9", "x=y,,", "metadata.name==", "Strict", "!")
_CONTENT_TYPES = (
    "application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
    "application/merge-patch+json", "application/json-patch+json",
    "application/strategic-merge-patch+json", "application/apply-patch+yaml", "text/plain",
    "multipart/form-data; boundary=x", "",
)  # fmt: skip
_HEADERS = (
    ("Impersonate-User", "kubernetes-admin"),
    ("Impersonate-Group", "system:masters"),
    ("Impersonate-Extra-scopes", "all"),
    ("Authorization", "Bearer not.a.token"),
    ("Authorization", "Basic YWRtaW46YWRtaW4="),
    ("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io"),
    ("Accept", "application/vnd.kubernetes.protobuf"),
)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def key(self) -> tuple[object, ...]:
        return (self.method, self.path, self.query, self.headers, self.body)


@st.composite
def _path(draw: st.DrawFn) -> str:
    parts = [draw(st.sampled_from(_PREFIXES)).rstrip("/")]
    if draw(st.booleans()):
        parts += ["namespaces", draw(st.sampled_from(_NAMES))]
    if draw(st.integers(0, 4)):
        parts.append(draw(st.sampled_from(_RESOURCES)))
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(_NAMES)))
            if draw(st.booleans()):
                parts.append(draw(st.sampled_from(_SUBRESOURCES)))
    return "/".join(parts) or "/"


@st.composite
def _body(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return b""
    if choice == 1:
        return draw(st.binary(max_size=64))
    doc = draw(badinput.mutated())
    text = json.dumps(doc, default=str, ensure_ascii=False)
    return (
        text.encode("utf-8", "surrogatepass")
        if choice == 2
        else text[: len(text) // 2].encode("utf-8", "surrogatepass")
    )


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(st.sampled_from(("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")))
    query = tuple(
        (draw(st.sampled_from(_QUERY_KEYS)), draw(st.sampled_from(_QUERY_VALUES)))
        for _ in range(draw(st.integers(0, 2)))
    )
    headers = [("Content-Type", draw(st.sampled_from(_CONTENT_TYPES)))]
    headers += draw(st.lists(st.sampled_from(_HEADERS), max_size=2))
    return Request(method, draw(_path()), query, tuple(headers), draw(_body()))
