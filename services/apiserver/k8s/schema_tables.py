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

from kubelab.v1 import meta_pb2, objects_pb2

# ---------------------------------------------------------------- kinds


@dataclass(frozen=True, slots=True)
class KindDecl:
    kind: str
    api_version: str
    resource: str
    namespaced: bool
    message: type[Message] | None  # None: declared in DECLARED_STRUCTS below


KINDS: tuple[KindDecl, ...] = (
    KindDecl("Service", "v1", "services", True, objects_pb2.Service),
    KindDecl("Pod", "v1", "pods", True, objects_pb2.Pod),
    KindDecl("Node", "v1", "nodes", False, objects_pb2.Node),
    KindDecl("Namespace", "v1", "namespaces", False, None),
    KindDecl("Event", "v1", "events", True, None),
    KindDecl("Deployment", "apps/v1", "deployments", True, objects_pb2.Deployment),
    KindDecl(
        "EndpointSlice", "discovery.k8s.io/v1", "endpointslices", True, objects_pb2.EndpointSlice
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


def definition_name(short: str) -> str:
    if short in _META:
        return f"io.k8s.apimachinery.pkg.apis.meta.v1.{short}"
    if short in _APPS:
        return f"io.k8s.api.apps.v1.{short}"
    if short in _DISCOVERY:
        return f"io.k8s.api.discovery.v1.{short}"
    return f"io.k8s.api.core.v1.{short}"


def message_class(name: str) -> type[Message]:
    found = getattr(objects_pb2, name, None) or getattr(meta_pb2, name, None)
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
}
ATOMIC_MAPS = {"ServiceSpec.selector", "PodSpec.nodeSelector"}
ATOMIC_STRUCTS = {"LabelSelector", "OwnerReference", "ObjectReference"}
FIELD_STRATEGIES = {"DeploymentSpec.strategy": "retainKeys"}

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


_TYPE_META = {
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
        **_TYPE_META,
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
        **_TYPE_META,
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

# ---------------------------------------------------------------- descriptions

TYPE_DESCRIPTIONS = {
    "Service": "Service is a named abstraction of software service (for example, mysql) "
    "consisting of local port (for example 3306) that the proxy listens on, and the "
    "selector that determines which pods will answer requests sent through the proxy.",
    "ServiceSpec": "ServiceSpec describes the attributes that a user creates on a service.",
    "ServicePort": "ServicePort contains information on service's port.",
    "ServiceStatus": "ServiceStatus represents the current status of a service.",
    "Pod": "Pod is a collection of containers that can run on a host. This resource is "
    "created by clients and scheduled onto hosts.",
    "PodSpec": "PodSpec is a description of a pod.",
    "Container": "A single application container that you want to run within a pod.",
    "ContainerPort": "ContainerPort represents a network port in a single container.",
    "Deployment": "Deployment enables declarative updates for Pods and ReplicaSets.",
    "DeploymentSpec": "DeploymentSpec is the specification of the desired behavior of the "
    "Deployment.",
    "EndpointSlice": "EndpointSlice represents a set of service endpoints. Most EndpointSlices "
    "are created by the EndpointSlice controller to represent the Pods selected by Service "
    "objects.",
    "Node": "Node is a worker node in Kubernetes; kubelab's node agent runs one.",
    "Namespace": "Namespace provides a scope for Names.",
    "Event": "Event is a report of an event somewhere in the cluster.",
    "ObjectMeta": "ObjectMeta is metadata that all persisted resources must have, which "
    "includes all objects users must create.",
}
_TYPE_FIELDS = {
    f"{kind}.{name}": decl.description
    for kind in ("Service", "Pod", "Deployment", "EndpointSlice", "Node")
    for name, decl in _TYPE_META.items()
}
FIELD_DESCRIPTIONS = {
    **_TYPE_FIELDS,
    **{f"{kind}.metadata": "Standard object's metadata." for kind in ("Service", "Pod", "Node")},
    "Deployment.metadata": "Standard object's metadata.",
    "EndpointSlice.metadata": "Standard object's metadata.",
    "Service.spec": "Spec defines the behavior of a service.",
    "Service.status": "Most recently observed status of the service.",
    "Pod.spec": "Specification of the desired behavior of the pod.",
    "Pod.status": "Most recently observed status of the pod.",
    "Deployment.spec": "Specification of the desired behavior of the Deployment.",
    "Deployment.status": "Most recently observed status of the Deployment.",
    "Node.spec": "Spec defines the behavior of a node.",
    "Node.status": "Most recently observed status of the node.",
    "EndpointSlice.addressType": "The type of address carried by this EndpointSlice: IPv4, "
    "IPv6 or FQDN.",
    "EndpointSlice.endpoints": "A list of unique endpoints in this slice.",
    "EndpointSlice.ports": "The network ports exposed by each endpoint in this slice.",
    "ServiceSpec.ports": "The list of ports that are exposed by this service.",
    "ServiceSpec.selector": "Route service traffic to pods with label keys and values matching "
    "this selector.",
    "ServiceSpec.clusterIP": 'The IP address of the service, usually assigned randomly; "None" '
    "makes a headless service.",
    "ServiceSpec.clusterIPs": "A list of IP addresses assigned to this service.",
    "ServiceSpec.type": "How the Service is exposed: ClusterIP, NodePort, LoadBalancer or "
    "ExternalName. Defaults to ClusterIP.",
    "ServiceSpec.sessionAffinity": "ClientIP or None: whether a client's connections stick to "
    "one pod.",
    "ServiceSpec.externalTrafficPolicy": "Cluster or Local: how external traffic is routed to "
    "the service's endpoints.",
    "ServiceSpec.internalTrafficPolicy": "Cluster or Local: how cluster-internal traffic is "
    "routed to the service's endpoints.",
    "ServiceSpec.externalName": "The DNS name this service aliases (type ExternalName).",
    "ServicePort.name": "The name of this port within the service. Must be a DNS_LABEL; "
    "required when the service has more than one port.",
    "ServicePort.protocol": 'The IP protocol for this port: "TCP" or "UDP". Default is TCP.',
    "ServicePort.port": "The port that will be exposed by this service.",
    "ServicePort.targetPort": "Number or name of the port to access on the pods targeted by the "
    "service. Defaults to the value of 'port'.",
    "ServicePort.nodePort": "The port on each node on which this service is exposed when type "
    "is NodePort or LoadBalancer; allocated by the system when not given.",
    "ServicePort.appProtocol": "The application protocol for this port, a hint for "
    "implementations.",
    "ObjectMeta.name": "Name must be unique within a namespace.",
    "ObjectMeta.namespace": "Namespace defines the space within which each name must be unique.",
    "ObjectMeta.labels": "Map of string keys and values that can be used to organize and "
    "categorize (scope and select) objects.",
    "ObjectMeta.annotations": "Unstructured key value map stored with a resource that may be "
    "set by external tools to store and retrieve arbitrary metadata.",
    "ObjectMeta.resourceVersion": "An opaque value that represents the internal version of "
    "this object.",
    "ObjectMeta.uid": "UID is the unique in time and space value for this object.",
    "PodSpec.containers": "List of containers belonging to the pod.",
    "PodSpec.nodeName": "The node the pod is scheduled onto.",
    "Container.name": "Name of the container specified as a DNS_LABEL.",
    "Container.image": "Container image name.",
    "Container.ports": "List of ports to expose from the container.",
    "Container.env": "List of environment variables to set in the container.",
    "DeploymentSpec.replicas": "Number of desired pods. Defaults to 1.",
    "DeploymentSpec.selector": "Label selector for pods; must match the template's labels.",
    "DeploymentSpec.template": "Template describes the pods that will be created.",
    "DeploymentSpec.strategy": "The deployment strategy to use to replace existing pods with "
    "new ones.",
}
