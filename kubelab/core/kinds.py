"""The kinds kubelab serves, and how their names are spelled.

One `KindInfo` per kind: its resource name (`services`), the names a user may
type (`svc`, `service`), its Kubernetes apiVersion and kind, whether it is
namespaced, its message class and which field of `kubelab.v1.Object` holds it.
Everything that maps between "what the user typed" and "which proto message"
goes through here, so adding a kind is one entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar, cast

from google.protobuf.message import Message
from typing_extensions import TypeVar as DefaultTypeVar  # PEP 696 defaults; typing's in 3.13

from kubelab.v1 import access_pb2, api_pb2, objects_pb2

# The label that ties an EndpointSlice to its Service (discovery.k8s.io).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Where a namespaced object goes when its manifest or the user names no namespace.
DEFAULT_NAMESPACE = "default"
# The API group of Role, ClusterRole, RoleBinding and ClusterRoleBinding.
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_V1 = f"{RBAC_GROUP}/v1"

# Any API object. Every member has `.metadata`, so code can reach it untyped-free.
ApiObject: TypeAlias = (
    objects_pb2.Service
    | objects_pb2.Pod
    | objects_pb2.Deployment
    | objects_pb2.EndpointSlice
    | objects_pb2.Node
    | objects_pb2.Namespace
    | objects_pb2.Event
    | access_pb2.ServiceAccount
    | access_pb2.Role
    | access_pb2.ClusterRole
    | access_pb2.RoleBinding
    | access_pb2.ClusterRoleBinding
)
# A concrete kind: `create(service)` gives back a Service to the type checker.
ObjectT = TypeVar("ObjectT", bound=ApiObject)
# The message class a `KindInfo` names: `PODS` is a `KindInfo[Pod]`, so an informer made from it
# holds Pods. A bare `KindInfo` is any kind (covariant: a `KindInfo[Pod]` is a `KindInfo`).
KindT = DefaultTypeVar("KindT", bound=ApiObject, default=ApiObject, covariant=True)


@dataclass(frozen=True, slots=True)
class KindInfo(Generic[KindT]):
    resource: str
    kind: str
    api_version: str
    namespaced: bool
    message: type[KindT]
    oneof_field: str
    aliases: tuple[str, ...]

    @property
    def qualified_resource(self) -> str:
        """The resource as Kubernetes names it in messages (its `GroupResource`):
        `deployments.apps`, `endpointslices.discovery.k8s.io`; a core kind's is bare
        (`services`)."""
        group = self.api_version.rpartition("/")[0]
        return f"{self.resource}.{group}" if group else self.resource


SERVICES = KindInfo(
    "services", "Service", "v1", True, objects_pb2.Service, "service", ("svc", "service")
)
PODS = KindInfo("pods", "Pod", "v1", True, objects_pb2.Pod, "pod", ("po", "pod"))
DEPLOYMENTS = KindInfo(
    "deployments",
    "Deployment",
    "apps/v1",
    True,
    objects_pb2.Deployment,
    "deployment",
    ("deploy", "deployment"),
)
ENDPOINTSLICES = KindInfo(
    "endpointslices",
    "EndpointSlice",
    "discovery.k8s.io/v1",
    True,
    objects_pb2.EndpointSlice,
    "endpoint_slice",
    ("endpointslice", "eps"),
)
NODES = KindInfo("nodes", "Node", "v1", False, objects_pb2.Node, "node", ("no", "node"))

NAMESPACES = KindInfo(
    "namespaces", "Namespace", "v1", False, objects_pb2.Namespace, "namespace", ("ns", "namespace")
)
EVENTS = KindInfo("events", "Event", "v1", True, objects_pb2.Event, "event", ("ev", "event"))
SERVICEACCOUNTS = KindInfo(
    "serviceaccounts",
    "ServiceAccount",
    "v1",
    True,
    access_pb2.ServiceAccount,
    "service_account",
    ("sa", "serviceaccount"),
)
# The RBAC kinds have no short names in Kubernetes.
ROLES = KindInfo("roles", "Role", RBAC_V1, True, access_pb2.Role, "role", ("role",))
CLUSTERROLES = KindInfo(
    "clusterroles",
    "ClusterRole",
    RBAC_V1,
    False,
    access_pb2.ClusterRole,
    "cluster_role",
    ("clusterrole",),
)
ROLEBINDINGS = KindInfo(
    "rolebindings",
    "RoleBinding",
    RBAC_V1,
    True,
    access_pb2.RoleBinding,
    "role_binding",
    ("rolebinding",),
)
CLUSTERROLEBINDINGS = KindInfo(
    "clusterrolebindings",
    "ClusterRoleBinding",
    RBAC_V1,
    False,
    access_pb2.ClusterRoleBinding,
    "cluster_role_binding",
    ("clusterrolebinding",),
)

ALL_KINDS: tuple[KindInfo, ...] = (
    SERVICES,
    PODS,
    DEPLOYMENTS,
    ENDPOINTSLICES,
    NODES,
    NAMESPACES,
    EVENTS,
    SERVICEACCOUNTS,
    ROLES,
    CLUSTERROLES,
    ROLEBINDINGS,
    CLUSTERROLEBINDINGS,
)
# The kinds the RBAC authorizer reads.
RBAC_KINDS: tuple[KindInfo, ...] = (ROLES, CLUSTERROLES, ROLEBINDINGS, CLUSTERROLEBINDINGS)

_BY_NAME: dict[str, KindInfo] = {}
for _info in ALL_KINDS:
    for _name in (_info.resource, _info.kind.lower(), *_info.aliases):
        _BY_NAME[_name] = _info
_BY_KIND = {info.kind: info for info in ALL_KINDS}
_BY_FIELD = {info.oneof_field: info for info in ALL_KINDS}


class UnknownKindError(ValueError):
    pass


def kind_info(name: str) -> KindInfo:
    """Resolve what a user typed (`svc`, `Service`, `services`) to a kind."""
    info = _BY_NAME.get(name.lower()) or _BY_KIND.get(name)
    if info is None:
        known = ", ".join(i.resource for i in ALL_KINDS)
        raise UnknownKindError(f'unknown kind "{name}"; known kinds: {known}')
    return info


def kind_of_manifest(api_version: str, kind: str) -> KindInfo | None:
    """The kind a manifest's apiVersion/kind names, or None when unsupported."""
    info = _BY_KIND.get(kind)
    if info is None or info.api_version != api_version:
        return None
    return info


_BY_MESSAGE: dict[type[Message], KindInfo] = {info.message: info for info in ALL_KINDS}


def info_of(obj: Message) -> KindInfo:
    """The kind of a typed object, without copying it."""
    info = _BY_MESSAGE.get(type(obj))
    if info is None:
        raise UnknownKindError(f"not an API object: {type(obj).__name__}")
    return info


def wrap(obj: Message) -> api_pb2.Object:
    """Put a typed object into the `Object` oneof."""
    for info in ALL_KINDS:
        if isinstance(obj, info.message):
            wrapped = api_pb2.Object()
            getattr(wrapped, info.oneof_field).CopyFrom(obj)
            return wrapped
    raise UnknownKindError(f"not an API object: {type(obj).__name__}")


def unwrap(wrapped: api_pb2.Object) -> tuple[KindInfo, ApiObject]:
    """The kind and the typed object held by an `Object`."""
    field = wrapped.WhichOneof("kind")
    if field is None:
        raise UnknownKindError("object: Required value: exactly one kind must be set")
    info = _BY_FIELD[field]
    return info, cast(ApiObject, getattr(wrapped, field))


def unwrap_as(wrapped: api_pb2.Object, like: ObjectT) -> ObjectT:
    """The object held by `wrapped`, which must be of the same kind as `like`."""
    _, obj = unwrap(wrapped)
    if not isinstance(obj, type(like)):
        raise UnknownKindError(f"expected a {type(like).__name__}, got a {type(obj).__name__}")
    return cast(ObjectT, obj)
