"""Defaulting and static validation of API objects: the apiserver's gate.

This module owns what an object must look like before it is stored, for every
kind kubelab serves. The apiserver calls, in this order:

1. `apply_defaults(info, obj)`: fills in what Kubernetes fills in (Service
   type ClusterIP, port protocol TCP, targetPort = port, Pod restartPolicy
   Always, probe periods, Deployment replicas 1 and a 25%/25% rolling update,
   namespace "default", apiVersion/kind from the kind). It only fills empty
   fields, so it is idempotent, and it never refuses anything.
2. `validate_object(info, obj)`: every static rule, on create and on update.
   Returns all problems at once, each a `FieldError` whose path and wording are
   Kubernetes' (`spec.ports[1].port: Invalid value: 0: must be between 1 and
   65535, inclusive`), so the apiserver answers INVALID_ARGUMENT naming fields.
   That includes the encoded size (`size.MAX_OBJECT_BYTES`).
3. On update, also `validate_update(info, old, new)`: only what may not change
   (a Service's clusterIP, a Deployment's selector, a Pod's spec but images, a
   binding's roleRef).

"Static" means decidable from the object alone: no store lookups, no ranges.
Whether a clusterIP lies in the service CIDR, a nodePort in 30000-32767, or an
address is free is the allocator's answer (`kubelab.core.allocators`), given
after these checks pass. Before validating an update, the apiserver carries
allocated values into a manifest that leaves them out
(`allocators.keep_allocated_values`); an empty clusterIP in `new` is read as
"unchanged" here either way.

Failure is data: the validators return errors and never raise on any field
content. Handing them an object whose type is not `info`'s kind is a
programming error and raises TypeError.

The generic syntax checks (`is_dns1123_label`, `is_qualified_name`,
`is_port_name`, `is_cidr`, ...) are re-exported from
`kubelab.core.validation.syntax` for other modules to reuse; the per-kind rules
live in this package's modules `services`, `pods` (Pod, Deployment), `cluster`
(EndpointSlice, Node), `namespaces` (Namespace, Event), `access` (ServiceAccount and
the RBAC kinds) and `meta` (what every kind shares).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from google.protobuf.message import Message

from kubelab.core.errors import FieldError
from kubelab.core.kinds import DEFAULT_NAMESPACE, RBAC_KINDS, KindInfo
from kubelab.core.validation.access import (
    default_binding,
    is_path_segment_name,
    validate_binding_update,
    validate_cluster_role,
    validate_cluster_role_binding,
    validate_role,
    validate_role_binding,
    validate_service_account,
)
from kubelab.core.validation.cluster import (
    validate_endpoint_slice,
    validate_endpoint_slice_update,
    validate_node,
    validate_node_update,
)
from kubelab.core.validation.meta import names, validate_meta_update
from kubelab.core.validation.namespaces import (
    default_namespace,
    validate_event,
    validate_namespace,
)
from kubelab.core.validation.pods import (
    default_deployment,
    default_pod_spec,
    validate_deployment,
    validate_deployment_update,
    validate_grace_period,
    validate_pod,
    validate_pod_update,
)
from kubelab.core.validation.services import (
    default_service,
    validate_service,
    validate_service_update,
)
from kubelab.core.validation.size import MAX_OBJECT_BYTES, validate_size
from kubelab.core.validation.syntax import (
    is_cidr,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_env_var_name,
    is_http_header_name,
    is_ip,
    is_ipv4,
    is_ipv6,
    is_label_value,
    is_non_special_ip,
    is_percent,
    is_port_name,
    is_port_num,
    is_qualified_name,
    parse_int_or_string,
    parse_ip,
)
from kubelab.v1 import access_pb2, objects_pb2

__all__ = [
    "DEFAULT_NAMESPACE",
    "MAX_OBJECT_BYTES",
    "apply_defaults",
    "is_cidr",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_env_var_name",
    "is_http_header_name",
    "is_ip",
    "is_ipv4",
    "is_ipv6",
    "is_label_value",
    "is_non_special_ip",
    "is_percent",
    "is_port_name",
    "is_port_num",
    "is_qualified_name",
    "parse_int_or_string",
    "parse_ip",
    "validate_grace_period",
    "validate_key",
    "validate_object",
    "validate_size",
    "validate_update",
]


_ApiObject: TypeAlias = (
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
_API_TYPES = (
    objects_pb2.Service,
    objects_pb2.Pod,
    objects_pb2.Deployment,
    objects_pb2.EndpointSlice,
    objects_pb2.Node,
    objects_pb2.Namespace,
    objects_pb2.Event,
    access_pb2.ServiceAccount,
    access_pb2.Role,
    access_pb2.ClusterRole,
    access_pb2.RoleBinding,
    access_pb2.ClusterRoleBinding,
)
_BINDINGS = (access_pb2.RoleBinding, access_pb2.ClusterRoleBinding)


def _typed(info: KindInfo, obj: Message) -> _ApiObject:
    if not isinstance(obj, info.message) or not isinstance(obj, _API_TYPES):
        raise TypeError(f"expected a {info.kind}, got {type(obj).__name__}")
    return obj


def apply_defaults(info: KindInfo, obj: Message) -> None:
    """Fill in Kubernetes' defaults, in place. Only empty fields are touched."""
    typed = _typed(info, obj)
    # The kind is known from the request, as Kubernetes sets the GVK on decode.
    typed.api_version = info.api_version
    typed.kind = info.kind
    if info.namespaced:
        typed.metadata.namespace = typed.metadata.namespace or DEFAULT_NAMESPACE
    else:
        # Kubernetes' BeforeCreate clears the namespace of a cluster-scoped object.
        typed.metadata.namespace = ""
    if isinstance(typed, objects_pb2.Service):
        default_service(typed)
    elif isinstance(typed, objects_pb2.Pod):
        default_pod_spec(typed.spec)
    elif isinstance(typed, objects_pb2.Deployment):
        default_deployment(typed)
    elif isinstance(typed, objects_pb2.Namespace):
        default_namespace(typed)
    elif isinstance(typed, _BINDINGS):
        default_binding(typed)


def validate_object(info: KindInfo, obj: Message) -> list[FieldError]:
    """Every static rule for `obj`'s kind; empty when `obj` may be stored."""
    typed = _typed(info, obj)
    if isinstance(typed, objects_pb2.Service):
        found = validate_service(typed)
    elif isinstance(typed, objects_pb2.Pod):
        found = validate_pod(typed)
    elif isinstance(typed, objects_pb2.Deployment):
        found = validate_deployment(typed)
    elif isinstance(typed, objects_pb2.EndpointSlice):
        found = validate_endpoint_slice(typed)
    elif isinstance(typed, objects_pb2.Namespace):
        found = validate_namespace(typed)
    elif isinstance(typed, objects_pb2.Event):
        found = validate_event(typed)
    elif isinstance(typed, access_pb2.ServiceAccount):
        found = validate_service_account(typed)
    elif isinstance(typed, access_pb2.Role):
        found = validate_role(typed)
    elif isinstance(typed, access_pb2.ClusterRole):
        found = validate_cluster_role(typed)
    elif isinstance(typed, access_pb2.RoleBinding):
        found = validate_role_binding(typed)
    elif isinstance(typed, access_pb2.ClusterRoleBinding):
        found = validate_cluster_role_binding(typed)
    else:
        found = validate_node(typed)
    return found + validate_size(typed)


def validate_key(info: KindInfo, namespace: str, name: str) -> list[FieldError]:
    """The name and namespace rules alone, for the apiserver to check before it
    reads the store by them: a 5 MB name must not become an etcd request."""
    check: Callable[[str], list[str]]
    if info.message is objects_pb2.Service:
        check = is_dns1035_label
    elif info.message is objects_pb2.Namespace:
        check = is_dns1123_label
    elif info in RBAC_KINDS:
        check = is_path_segment_name
    else:
        check = is_dns1123_subdomain
    found = names("metadata.name", name, check) if name else []
    if info.namespaced and namespace:
        found += names("metadata.namespace", namespace, is_dns1123_label)
    return found


def validate_update(info: KindInfo, old: Message, new: Message) -> list[FieldError]:
    """What `new` may not change relative to the stored `old`; run with `validate_object(new)`.

    Labels and annotations are always mutable; name, namespace and uid never.
    """
    before, after = _typed(info, old), _typed(info, new)
    found = validate_meta_update(before.metadata, after.metadata)
    if isinstance(before, objects_pb2.Service) and isinstance(after, objects_pb2.Service):
        found += validate_service_update(before, after)
    elif isinstance(before, objects_pb2.Pod) and isinstance(after, objects_pb2.Pod):
        found += validate_pod_update(before, after)
    elif isinstance(before, objects_pb2.Deployment) and isinstance(after, objects_pb2.Deployment):
        found += validate_deployment_update(before, after)
    elif isinstance(before, objects_pb2.EndpointSlice) and isinstance(
        after, objects_pb2.EndpointSlice
    ):
        found += validate_endpoint_slice_update(before, after)
    elif isinstance(before, objects_pb2.Node) and isinstance(after, objects_pb2.Node):
        found += validate_node_update(before, after)
    elif isinstance(before, _BINDINGS) and isinstance(after, _BINDINGS):
        found += validate_binding_update(before, after)
    return found
