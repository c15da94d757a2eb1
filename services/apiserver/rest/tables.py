"""Server-side Tables (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).

`kubectl get` asks for a Table and prints its columns as they come, so the server
decides what `kubectl get svc` shows. The columns per kind are Kubernetes' own
(`pkg/printers/internalversion/printers.go`): names, types, and priority 1 for the
ones only `-o wide` prints. The cells reuse the rules `kubelab get` already copies
from those printers (`kubelab.core.printing`: ports as `80:30080/TCP`, a pod's
STATUS from its containers, AGE as `duration.HumanDuration`).

Each row carries `object`: by default the object's metadata as a
PartialObjectMetadata (`includeObject=Metadata`), which kubectl needs for
`-A` (the NAMESPACE column) and `--show-labels`; `Object` gives the whole object,
`None` nothing.

Pure: no I/O; "now" is a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubelab.core import kinds, printing, printing_access
from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.v1 import access_pb2, objects_pb2
from services.apiserver.rest.convert import to_json
from services.apiserver.rest.errors import bad_request

NONE = printing.NONE
UNKNOWN = "<unknown>"
NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
NODE_ROLE_LABEL = "kubernetes.io/role"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


_NAME = Column("Name", format="name", description="Name must be unique within a namespace.")
_AGE = Column("Age", description="CreationTimestamp is when this object was created.")


def _wide(name: str, description: str, type_: str = "string") -> Column:
    return Column(name, type_, description, priority=1)


def service_cells(svc: objects_pb2.Service, now: datetime) -> list[Any]:
    return [
        svc.spec.type or "ClusterIP",
        svc.spec.cluster_ip or NONE,
        printing.service_external_ip(svc),
        printing.service_ports(svc),
        printing.age(svc.metadata.creation_timestamp, now),
        printing.format_labels(svc.spec.selector),
    ]


def pod_cells(pod: objects_pb2.Pod, now: datetime) -> list[Any]:
    # READY, STATUS, RESTARTS ("2 (5m ago)"), AGE, IP, NODE as `kubelab get` prints them;
    # kubelab has no preemption nor readiness gates.
    return [*printing.pod_cells(pod, now), NONE, NONE]


def node_roles(node: objects_pb2.Node) -> str:
    """kubectl's `findNodeRoles`: `node-role.kubernetes.io/<role>` and `kubernetes.io/role`."""
    roles = set()
    for key, value in node.metadata.labels.items():
        if key.startswith(NODE_ROLE_PREFIX) and key != NODE_ROLE_PREFIX:
            roles.add(key.removeprefix(NODE_ROLE_PREFIX))
        elif key == NODE_ROLE_LABEL and value:
            roles.add(value)
    return ",".join(sorted(roles)) or NONE


def node_cells(node: objects_pb2.Node, now: datetime) -> list[Any]:
    addresses = node.status.addresses
    internal = [a.address for a in addresses if a.type == "InternalIP"]
    external = [a.address for a in addresses if a.type == "ExternalIP"]
    return [
        printing.node_status(node),
        node_roles(node),
        printing.age(node.metadata.creation_timestamp, now),
        "kubelab",  # VERSION: the kubelet's; a kubelab node agent has none
        internal[0] if internal else NONE,
        external[0] if external else NONE,
        UNKNOWN,
        UNKNOWN,
        UNKNOWN,
    ]


def deployment_cells(deploy: objects_pb2.Deployment, now: datetime) -> list[Any]:
    ours = printing.deployment_cells(deploy, now)
    return [ours[0], deploy.status.updated_replicas, deploy.status.available_replicas, *ours[3:]]


def endpoint_slice_cells(eps: objects_pb2.EndpointSlice, now: datetime) -> list[Any]:
    return printing.endpoint_slice_cells(eps, now)


def namespace_cells(namespace: objects_pb2.Namespace, now: datetime) -> list[Any]:
    return printing.namespace_cells(namespace, now)


def event_cells(event: objects_pb2.Event, now: datetime) -> list[Any]:
    """Kubernetes' event columns, in their order (kubectl's -o wide order)."""
    ours = printing.event_cells(event, now)
    ordered: list[Any] = [ours[i] for i in printing.EVENT_WIDE_ORDER]
    ordered[8] = event.count or 1  # COUNT is an integer column
    return ordered


def service_account_cells(account: access_pb2.ServiceAccount, now: datetime) -> list[Any]:
    return [len(account.secrets), printing.age(account.metadata.creation_timestamp, now)]


@dataclass(frozen=True, slots=True)
class KindTable:
    columns: tuple[Column, ...]  # NAME first, unless `named` is False
    cells: Callable[[Any, datetime], list[Any]]  # every column after NAME
    # Events have no leading NAME: their cells are every column (Name is a wide one).
    named: bool = True


# Kubernetes' default table (no printer of its own): the creation time, RFC 3339.
_ROLE_TABLE = KindTable(
    (_NAME, Column("Created At", "date", _AGE.description)), printing_access.role_cells
)
_BINDING_TABLE = KindTable(
    (
        _NAME,
        Column("Role", description="RoleRef can reference a Role or a ClusterRole."),
        _AGE,
        _wide("Users", "Users in the roleBinding"),
        _wide("Groups", "Groups in the roleBinding"),
        _wide("ServiceAccounts", "ServiceAccounts in the roleBinding"),
    ),
    printing_access.binding_cells,
)

TABLES: dict[str, KindTable] = {
    kinds.SERVICES.resource: KindTable(
        (
            _NAME,
            Column("Type", description="type determines how the Service is exposed."),
            Column("Cluster-IP", description="clusterIP is the IP address of the service."),
            Column("External-IP", description="externalIPs and load balancer ingress IPs."),
            Column("Port(s)", description="The list of ports that are exposed by this service."),
            _AGE,
            _wide("Selector", "Route service traffic to pods with label keys and values."),
        ),
        service_cells,
    ),
    kinds.PODS.resource: KindTable(
        (
            _NAME,
            Column("Ready", description="The aggregate readiness state of this pod."),
            Column("Status", description="The aggregate status of the containers in this pod."),
            Column("Restarts", description="The number of times the containers restarted."),
            _AGE,
            _wide("IP", "podIP address allocated to the pod."),
            _wide("Node", "NodeName is the node the pod is scheduled onto."),
            _wide("Nominated Node", "nominatedNodeName is set when this pod preempts others."),
            _wide("Readiness Gates", "If specified, all readiness gates will be evaluated."),
        ),
        pod_cells,
    ),
    kinds.NODES.resource: KindTable(
        (
            _NAME,
            Column("Status", description="The status of the node"),
            Column("Roles", description="The roles of the node"),
            _AGE,
            Column("Version", description="Kubelet Version reported by the node."),
            _wide("Internal-IP", "List of addresses reachable to the node."),
            _wide("External-IP", "List of addresses reachable to the node."),
            _wide("OS-Image", "OS Image reported by the node."),
            _wide("Kernel-Version", "Kernel Version reported by the node."),
            _wide("Container-Runtime", "ContainerRuntime Version reported by the node."),
        ),
        node_cells,
    ),
    kinds.DEPLOYMENTS.resource: KindTable(
        (
            _NAME,
            Column("Ready", description="Number of the pod with ready state"),
            Column("Up-to-date", "integer", "Total number of non-terminated pods updated."),
            Column("Available", "integer", "Total number of available pods."),
            _AGE,
            _wide("Containers", "Names of each container in the template."),
            _wide("Images", "Images referenced by each container in the template."),
            _wide("Selector", "Label selector for pods."),
        ),
        deployment_cells,
    ),
    kinds.ENDPOINTSLICES.resource: KindTable(
        (
            _NAME,
            Column("AddressType", description="Type of address carried by this EndpointSlice"),
            Column("Ports", description="Ports included in this EndpointSlice"),
            Column("Endpoints", description="Endpoints included in this EndpointSlice"),
            _AGE,
        ),
        endpoint_slice_cells,
    ),
    kinds.NAMESPACES.resource: KindTable(
        (
            _NAME,
            Column("Status", description="The status of the namespace"),
            _AGE,
        ),
        namespace_cells,
    ),
    kinds.EVENTS.resource: KindTable(
        (
            Column("Last Seen", description="The time of the most recent occurrence."),
            Column("Type", description="Type of this event (Normal, Warning)."),
            Column("Reason", description="Short, machine understandable reason for the event."),
            Column("Object", description="The object that this event is about."),
            _wide("Subobject", "The part of the object the event is about (fieldPath)."),
            _wide("Source", "The component reporting this event."),
            Column("Message", description="A description of the status of this operation."),
            _wide("First Seen", "The time at which the event was first recorded."),
            _wide("Count", "The number of times this event has occurred.", "integer"),
            Column("Name", description=_NAME.description, priority=1, format="name"),
        ),
        event_cells,
        named=False,
    ),
    kinds.SERVICEACCOUNTS.resource: KindTable(
        (
            _NAME,
            Column(
                "Secrets", description="Secrets is a list of the secrets in the same namespace."
            ),
            _AGE,
        ),
        service_account_cells,
    ),
    kinds.ROLES.resource: _ROLE_TABLE,
    kinds.CLUSTERROLES.resource: _ROLE_TABLE,
    kinds.ROLEBINDINGS.resource: _BINDING_TABLE,
    kinds.CLUSTERROLEBINDINGS.resource: _BINDING_TABLE,
}

INCLUDE_OBJECT = ("Metadata", "Object", "None")


def check_include_object(value: str) -> str:
    if value and value not in INCLUDE_OBJECT:
        raise bad_request(
            f"includeObject: Unsupported value: {value!r}: supported values: "
            + ", ".join(f'"{v}"' for v in INCLUDE_OBJECT)
        )
    return value or "Metadata"


def _row_object(obj: ApiObject, include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    body = to_json(obj)
    if include == "Object":
        return body
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": body["metadata"],
    }


def row(info: KindInfo, obj: ApiObject, now: datetime, include: str = "Metadata") -> dict[str, Any]:
    table = TABLES[info.resource]
    lead = [obj.metadata.name] if table.named else []
    out: dict[str, Any] = {"cells": [*lead, *table.cells(obj, now)]}
    shown = _row_object(obj, include)
    if shown is not None:
        out["object"] = shown
    return out


def table(
    info: KindInfo,
    items: Sequence[ApiObject],
    now: datetime,
    *,
    resource_version: str,
    continue_token: str = "",
    include: str = "Metadata",
    with_columns: bool = True,
) -> dict[str, Any]:
    columns = TABLES[info.resource].columns if with_columns else None
    rows = [row(info, obj, now, include) for obj in items]
    return table_body(
        rows, columns, resource_version=resource_version, continue_token=continue_token
    )


def table_body(
    rows: list[dict[str, Any]],
    columns: Sequence[Column] | None,
    *,
    resource_version: str,
    continue_token: str = "",
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table around `rows`; `columns` None leaves their definitions out
    (a watch's later events carry rows only)."""
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    body: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    if columns is not None:
        body["columnDefinitions"] = [c.definition() for c in columns]
    body["rows"] = rows
    return body
