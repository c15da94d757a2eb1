"""Namespaces and Events: their defaults and static rules, in Kubernetes' words.

A Namespace's name is a DNS-1123 label (`ValidateNamespaceName`); on create the
apiserver gives it the `kubernetes` finalizer (which the namespace controller
removes once the namespace is empty), the phase Active and the immutable label
`kubernetes.io/metadata.name` (Kubernetes 1.21+). Its finalizers and status are
server-owned on update: `spec.finalizers` changes only through the namespace
controller (Kubernetes' `/finalize` subresource), as NamespaceStrategy keeps them.

An Event's namespace must be its involved object's (`does not match
event.namespace`), or `default` for a cluster-scoped object such as a Node,
as core/v1 `legacyValidateEvent` has it.
"""

from __future__ import annotations

from kubelab.core import errors
from kubelab.core.errors import FieldError
from kubelab.core.validation.meta import names, validate_object_meta
from kubelab.core.validation.syntax import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
)
from kubelab.v1 import objects_pb2

FINALIZER_KUBERNETES = "kubernetes"
# Kubernetes' IsStandardFinalizerName.
_STANDARD_FINALIZERS = frozenset({FINALIZER_KUBERNETES, "orphan", "foregroundDeletion"})
NAME_LABEL = "kubernetes.io/metadata.name"
ACTIVE = "Active"
TERMINATING = "Terminating"
# The namespaces the apiserver creates at start and never lets go (Kubernetes'
# system namespaces; kube-node-lease is not immortal there either, but is created).
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


def default_namespace(namespace: objects_pb2.Namespace) -> None:
    meta = namespace.metadata
    if meta.name:
        meta.labels[NAME_LABEL] = meta.name
    if FINALIZER_KUBERNETES not in namespace.spec.finalizers:
        namespace.spec.finalizers.append(FINALIZER_KUBERNETES)
    if not namespace.status.phase:
        namespace.status.phase = ACTIVE


def validate_namespace(namespace: objects_pb2.Namespace) -> list[FieldError]:
    found = validate_object_meta(namespace.metadata, namespaced=False, name_check=is_dns1123_label)
    for finalizer in namespace.spec.finalizers:
        problems = is_qualified_name(finalizer)
        found += [errors.invalid("spec.finalizers", finalizer, p) for p in problems]
        if not problems and "/" not in finalizer and finalizer not in _STANDARD_FINALIZERS:
            found.append(
                errors.invalid(
                    "spec.finalizers",
                    finalizer,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    if namespace.status.phase not in ("", ACTIVE, TERMINATING):
        found.append(
            errors.not_supported("status.phase", namespace.status.phase, (ACTIVE, TERMINATING))
        )
    return found


def validate_event(event: objects_pb2.Event) -> list[FieldError]:
    found = validate_object_meta(event.metadata, namespaced=True, name_check=is_dns1123_subdomain)
    involved = event.involved_object.namespace
    namespace = event.metadata.namespace
    if (involved and involved != namespace) or (not involved and namespace != "default"):
        found.append(
            errors.invalid("involvedObject.namespace", involved, "does not match event.namespace")
        )
    if event.involved_object.namespace:
        found += names("involvedObject.namespace", involved, is_dns1123_label)
    if event.type not in ("", "Normal", "Warning"):
        found.append(errors.not_supported("type", event.type, ("Normal", "Warning")))
    if event.count < 0:
        found.append(errors.invalid("count", event.count, "must be greater than or equal to 0"))
    return found
