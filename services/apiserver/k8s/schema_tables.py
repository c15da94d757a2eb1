"""What a protobuf descriptor cannot say about kubelab's kinds, as Kubernetes says it.

Read by `schema`, which walks the descriptors and looks each field up here by
`<Definition>.<jsonName>` (`ServiceSpec.ports`). The list semantics are the Go
struct tags of k8s.io/api core/v1, apps/v1, discovery/v1 and apimachinery's
meta/v1 (`patchStrategy`, `patchMergeKey`, `+listType`, `+listMapKey`,
`+structType`, `+mapType`) for the fields kubelab has; the descriptions are
short paraphrases of Kubernetes' API reference, for `kubectl explain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from google.protobuf.message import Message

from kubelab.v1 import access_pb2, meta_pb2, objects_pb2
from services.apiserver.k8s import schema_access as access
from services.apiserver.k8s import schema_descriptions as descriptions

# ---------------------------------------------------------------- kinds


@dataclass(frozen=True, slots=True)
class KindDecl:
    kind: str
    api_version: str
    resource: str
    namespaced: bool
    message: type[Message] | None  # None: declared in DECLARED_STRUCTS below


_RBAC_V1 = "rbac.authorization.k8s.io/v1"
KINDS: tuple[KindDecl, ...] = (
    KindDecl("Service", "v1", "services", True, objects_pb2.Service),
    KindDecl("Pod", "v1", "pods", True, objects_pb2.Pod),
    KindDecl("Node", "v1", "nodes", False, objects_pb2.Node),
    KindDecl("Namespace", "v1", "namespaces", False, None),
    KindDecl("Event", "v1", "events", True, None),
    # Read-only: derived from EndpointSlices (`endpoints_mirror`), never written.
    KindDecl("Endpoints", "v1", "endpoints", True, None),
    KindDecl("Deployment", "apps/v1", "deployments", True, objects_pb2.Deployment),
    KindDecl(
        "EndpointSlice", "discovery.k8s.io/v1", "endpointslices", True, objects_pb2.EndpointSlice
    ),
    KindDecl("ServiceAccount", "v1", "serviceaccounts", True, access_pb2.ServiceAccount),
    KindDecl("Role", _RBAC_V1, "roles", True, access_pb2.Role),
    KindDecl("ClusterRole", _RBAC_V1, "clusterroles", False, access_pb2.ClusterRole),
    KindDecl("RoleBinding", _RBAC_V1, "rolebindings", True, access_pb2.RoleBinding),
    KindDecl(
        "ClusterRoleBinding", _RBAC_V1, "clusterrolebindings", False, access_pb2.ClusterRoleBinding
    ),
)

# ---------------------------------------------------------------- names

_META = {
    "ObjectMeta",
    "OwnerReference",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Condition",
    "ManagedFieldsEntry",
}
_APPS = {
    "Deployment",
    "DeploymentSpec",
    "DeploymentStatus",
    "DeploymentStrategy",
    "RollingUpdateDeployment",
    "DeploymentCondition",
}
_DISCOVERY = {"EndpointSlice", "Endpoint", "EndpointPort", "EndpointConditions"}
# kubelab has one Condition message; Kubernetes one struct per owner.
_CONDITIONS = {
    "PodStatus": "PodCondition",
    "NodeStatus": "NodeCondition",
    "DeploymentStatus": "DeploymentCondition",
    "NamespaceStatus": "NamespaceCondition",
}


def definition_short_name(proto_name: str, owner: str) -> str:
    if proto_name == "Condition":
        return _CONDITIONS.get(owner, "Condition")
    return proto_name


# Short names kubelab gives a struct whose Kubernetes name another already has.
_RENAMED = {"CoreEndpointPort": "io.k8s.api.core.v1.EndpointPort"}


def definition_name(short: str) -> str:
    if short in _RENAMED:
        return _RENAMED[short]
    if short in _META:
        return f"io.k8s.apimachinery.pkg.apis.meta.v1.{short}"
    if short in _APPS:
        return f"io.k8s.api.apps.v1.{short}"
    if short in _DISCOVERY:
        return f"io.k8s.api.discovery.v1.{short}"
    if short in access.RBAC_DEFINITIONS:
        return f"io.k8s.api.rbac.v1.{short}"
    return f"io.k8s.api.core.v1.{short}"


def message_class(name: str) -> type[Message]:
    found = (
        getattr(objects_pb2, name, None)
        or getattr(access_pb2, name, None)
        or getattr(meta_pb2, name, None)
    )
    if found is None:
        raise KeyError(f"no kubelab.v1 message {name}")
    return found  # type: ignore[no-any-return]


# ---------------------------------------------------------------- lists and maps


@dataclass(frozen=True, slots=True)
class ListSpec:
    list_type: Literal["atomic", "set", "map"]
    map_keys: tuple[str, ...] = ()
    merge: bool = False
    merge_key: str | None = None


def _keyed(merge_key: str, *more_keys: str) -> ListSpec:
    return ListSpec("map", (merge_key, *more_keys), True, merge_key)


ATOMIC = ListSpec("atomic")
LISTS: dict[str, ListSpec] = {
    "ObjectMeta.ownerReferences": _keyed("uid"),
    "ObjectMeta.finalizers": ListSpec("set", merge=True),
    "ServiceSpec.ports": _keyed("port", "protocol"),
    "ServiceSpec.clusterIPs": ATOMIC,
    "ServiceSpec.externalIPs": ATOMIC,
    "ServiceSpec.loadBalancerSourceRanges": ATOMIC,
    "ServiceSpec.ipFamilies": ATOMIC,
    "ServiceStatus.conditions": _keyed("type"),
    "LoadBalancerStatus.ingress": ATOMIC,
    "PodSpec.containers": _keyed("name"),
    "Container.ports": _keyed("containerPort", "protocol"),
    "Container.env": _keyed("name"),
    "Container.command": ATOMIC,
    "Container.args": ATOMIC,
    "HTTPGetAction.httpHeaders": ATOMIC,
    "ExecAction.command": ATOMIC,
    "PodStatus.conditions": _keyed("type"),
    "PodStatus.podIPs": _keyed("ip"),
    "PodStatus.containerStatuses": ATOMIC,
    "DeploymentStatus.conditions": _keyed("type"),
    "LabelSelector.matchExpressions": ATOMIC,
    "LabelSelectorRequirement.values": ATOMIC,
    "EndpointSlice.endpoints": ATOMIC,
    "EndpointSlice.ports": ATOMIC,
    "Endpoint.addresses": ListSpec("set"),  # a set, but no patchStrategy: replaced by SMP
    "NodeSpec.podCIDRs": ListSpec("set", merge=True),
    "NodeStatus.conditions": _keyed("type"),
    "NodeStatus.addresses": _keyed("type"),
    "NamespaceSpec.finalizers": ATOMIC,
    "NamespaceStatus.conditions": _keyed("type"),
    **dict.fromkeys(access.ATOMIC_LISTS, ATOMIC),
    **{key: _keyed("name") for key in access.MERGED_BY_NAME},
}
ATOMIC_MAPS = {"ServiceSpec.selector", "PodSpec.nodeSelector"}
ATOMIC_STRUCTS = {"LabelSelector", "OwnerReference", "ObjectReference", *access.ATOMIC_STRUCTS}
FIELD_STRATEGIES = {"DeploymentSpec.strategy": "retainKeys"}

# ---------------------------------------------------------------- required fields

# Kubernetes' OpenAPI `required` by definition, in its order: the fields its Go types
# hold without `+optional`/omitempty. `kubectl explain` marks them "-required-". A
# Container's image is not among them (Kubernetes leaves it optional in the schema so
# workload controllers may fill it in; its validation still requires it on a Pod). A
# name kubelab's struct lacks (ContainerStatus.imageID) is left out of its document.
REQUIRED: dict[str, tuple[str, ...]] = {
    "ServicePort": ("port",),
    "Container": ("name",),
    "ContainerPort": ("containerPort",),
    "EnvVar": ("name",),
    "HTTPGetAction": ("port",),
    "HTTPHeader": ("name", "value"),
    "TCPSocketAction": ("port",),
    "PodSpec": ("containers",),
    "PodIP": ("ip",),
    "ContainerStatus": ("name", "ready", "restartCount", "image", "imageID"),
    "ContainerStateTerminated": ("exitCode",),
    "DeploymentSpec": ("selector", "template"),
    "EndpointSlice": ("addressType",),
    "Endpoint": ("addresses",),
    "NodeAddress": ("type", "address"),
    "DaemonEndpoint": ("Port",),
    "Event": ("metadata", "involvedObject"),
    "PodCondition": ("type", "status"),
    "NodeCondition": ("type", "status"),
    "DeploymentCondition": ("type", "status"),
    "NamespaceCondition": ("type", "status"),
    "Condition": ("type", "status", "lastTransitionTime", "reason", "message"),
    "LabelSelectorRequirement": ("key", "operator"),
    "OwnerReference": ("apiVersion", "kind", "name", "uid"),
    **access.REQUIRED,
}

# ---------------------------------------------------------------- declared fields

ScalarName = Literal["string", "integer", "boolean", "date-time", "any"]
SCALAR_NAMES: dict[str, ScalarName] = {
    "string": "string",
    "integer": "integer",
    "boolean": "boolean",
    "date-time": "date-time",
    "object": "any",  # free-form JSON (FieldsV1)
}


@dataclass(frozen=True, slots=True)
class ListDecl:
    items: TypeDecl
    list_type: Literal["atomic", "set", "map"] = "atomic"
    map_keys: tuple[str, ...] = ()
    merge: bool = False
    merge_key: str | None = None


@dataclass(frozen=True, slots=True)
class MapDecl:
    values: TypeDecl
    atomic: bool = False


# A scalar name, a declared struct, a kubelab.v1 message name, or a list/map of one.
TypeDecl: TypeAlias = str | ListDecl | MapDecl


@dataclass(frozen=True, slots=True)
class Decl:
    type: TypeDecl
    description: str = ""
    strategy: str | None = None


def _d(type_: TypeDecl, description: str = "") -> Decl:
    return Decl(type_, description)


TYPE_META = {
    "apiVersion": _d(
        "string", "APIVersion defines the versioned schema of this representation of an object."
    ),
    "kind": _d(
        "string", "Kind is a string value representing the REST resource this object represents."
    ),
}
_CONDITION_FIELDS = {
    "type": _d("string", "Type of the condition."),
    "status": _d("string", "Status of the condition: True, False or Unknown."),
    "lastTransitionTime": _d("date-time", "Last time the condition changed status."),
    "reason": _d("string", "Machine-readable reason for the last transition."),
    "message": _d("string", "Human-readable details about the last transition."),
}
DECLARED_STRUCTS: dict[str, dict[str, Decl]] = {
    "Namespace": {
        **TYPE_META,
        "metadata": _d("ObjectMeta", "Standard object's metadata."),
        "spec": _d("NamespaceSpec", "Spec defines the behavior of the Namespace."),
        "status": _d("NamespaceStatus", "Status describes the current status of a Namespace."),
    },
    "NamespaceSpec": {
        "finalizers": _d(
            ListDecl("string"), "Finalizers must be empty before the namespace is removed."
        ),
    },
    "NamespaceStatus": {
        "phase": _d("string", "Phase is the current lifecycle phase: Active or Terminating."),
        "conditions": _d(
            ListDecl("NamespaceCondition", "map", ("type",), True, "type"),
            "The latest available observations of the namespace's state.",
        ),
    },
    "NamespaceCondition": _CONDITION_FIELDS,
    "Event": {
        **TYPE_META,
        "metadata": _d("ObjectMeta", "Standard object's metadata."),
        "involvedObject": _d("ObjectReference", "The object that this event is about."),
        "reason": _d("string", "Short, machine-understandable reason for the event."),
        "message": _d("string", "Human-readable description of the status of this operation."),
        "source": _d("EventSource", "The component reporting this event."),
        "firstTimestamp": _d("date-time", "The time at which the event was first recorded."),
        "lastTimestamp": _d("date-time", "The time of the most recent occurrence."),
        "count": _d("integer", "The number of times this event has occurred."),
        "type": _d("string", "Type of this event (Normal, Warning)."),
        "eventTime": _d("date-time", "Time when this Event was first observed."),
        "series": _d("EventSeries", "Data about the Event series this event represents."),
        "action": _d("string", "What action was taken/failed regarding to the object."),
        "related": _d("ObjectReference", "Optional secondary object for more complex actions."),
        "reportingComponent": _d("string", "Name of the controller that emitted this Event."),
        "reportingInstance": _d("string", "ID of the controller instance."),
    },
    "EventSource": {
        "component": _d("string", "Component from which the event is generated."),
        "host": _d("string", "Node name on which the event is generated."),
    },
    "EventSeries": {
        "count": _d("integer", "Number of occurrences in this series up to the last heartbeat."),
        "lastObservedTime": _d("date-time", "Time of the last occurrence observed."),
    },
    "Endpoints": {
        **TYPE_META,
        "metadata": _d("ObjectMeta", "Standard object's metadata."),
        "subsets": _d(
            ListDecl("EndpointSubset"),
            "The set of all endpoints is the union of all subsets. Addresses are placed into "
            "subsets according to the IPs they share.",
        ),
    },
    "EndpointSubset": {
        "addresses": _d(
            ListDecl("EndpointAddress"),
            "IP addresses which offer the related ports that are marked as ready.",
        ),
        "notReadyAddresses": _d(
            ListDecl("EndpointAddress"),
            "IP addresses which offer the related ports but are not currently marked as ready.",
        ),
        "ports": _d(
            ListDecl("CoreEndpointPort"), "Port numbers available on the related IP addresses."
        ),
    },
    "EndpointAddress": {
        "ip": _d("string", "The IP of this endpoint."),
        "hostname": _d("string", "The Hostname of this endpoint."),
        "nodeName": _d("string", "The node hosting this endpoint."),
        "targetRef": _d("ObjectReference", "Reference to object providing the endpoint."),
    },
    "CoreEndpointPort": {
        "name": _d("string", "The name of this port; must match a ServicePort's name."),
        "port": _d("integer", "The port number of the endpoint."),
        "protocol": _d("string", "The IP protocol for this port: TCP, UDP or SCTP."),
        "appProtocol": _d("string", "The application protocol for this port."),
    },
    "ManagedFieldsEntry": {
        "manager": _d("string", "Identifier of the workflow managing these fields."),
        "operation": _d("string", "The type of operation which lead to this entry: Apply, Update."),
        "apiVersion": _d("string", "The version of the resource this field set applies to."),
        "time": _d("date-time", "When this entry was last changed."),
        "fieldsType": _d("string", "The discriminator for the fields format: FieldsV1."),
        "fieldsV1": _d("object", "The set of fields of this entry, in the FieldsV1 encoding."),
        "subresource": _d("string", "The subresource used to update the object."),
    },
}
# Fields Kubernetes has and kubelab's messages lack, but that the HTTP API carries.
EXTRA_FIELDS: dict[str, dict[str, Decl]] = {
    "ObjectMeta": {
        "managedFields": _d(
            ListDecl("ManagedFieldsEntry"),
            "Which field manager owns which fields (server-side apply); written by the server.",
        ),
        "finalizers": _d(
            ListDecl("string", "set", merge=True),
            "Must be empty before the object is deleted from the registry.",
        ),
        "deletionGracePeriodSeconds": _d(
            "integer", "Seconds allowed for this object to terminate gracefully."
        ),
        "selfLink": _d("string", "Deprecated; not set by the server."),
    },
}


# Re-exported for `schema`, which reads every table from here.
TYPE_DESCRIPTIONS = descriptions.TYPE_DESCRIPTIONS | access.TYPE_DESCRIPTIONS
FIELD_DESCRIPTIONS = descriptions.field_descriptions(TYPE_META) | access.FIELD_DESCRIPTIONS
