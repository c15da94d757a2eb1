"""Which ServiceAccounts a namespace is missing: a `default` one in every namespace (pure).

Kubernetes' serviceaccounts controller (pkg/controller/serviceaccount,
`ServiceAccountsController.syncNamespace`) ensures the accounts it is configured with,
`default` only, in every namespace that is Active: created when a namespace appears and
again when someone deletes it. A namespace being deleted gets none (its content is being
emptied; a `default` created then would only be deleted again).
"""

from __future__ import annotations

from collections.abc import Collection

from kubelab.core import kinds
from kubelab.core.validation.namespaces import TERMINATING
from kubelab.v1 import access_pb2, meta_pb2, objects_pb2

DEFAULT_SERVICE_ACCOUNT = "default"
MANAGED = (DEFAULT_SERVICE_ACCOUNT,)


def missing_service_accounts(
    namespace: objects_pb2.Namespace | None, existing: Collection[str]
) -> tuple[access_pb2.ServiceAccount, ...]:
    """The accounts to create in `namespace`, given the names it holds."""
    if namespace is None:
        return ()
    if namespace.status.phase == TERMINATING or namespace.metadata.HasField("deletion_timestamp"):
        return ()
    return tuple(
        access_pb2.ServiceAccount(
            api_version=kinds.SERVICEACCOUNTS.api_version,
            kind=kinds.SERVICEACCOUNTS.kind,
            metadata=meta_pb2.ObjectMeta(name=name, namespace=namespace.metadata.name),
        )
        for name in MANAGED
        if name not in existing
    )
