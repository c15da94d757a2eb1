"""kubectl's cells for ServiceAccounts and the RBAC kinds (`kubelab.core.printing`'s rules).

Kubernetes prints them so (pkg/printers/internalversion/printers.go):

* a ServiceAccount: SECRETS, the number of its `secrets`, then AGE;
* a RoleBinding or ClusterRoleBinding: ROLE as `ClusterRole/view`, AGE, and with
  `-o wide` USERS, GROUPS and SERVICEACCOUNTS (`namespace/name`), each joined by ", "
  (`rbac.SubjectsStrings`);
* a Role or ClusterRole has no printer there: the apiserver's default table
  (`rest.NewDefaultTableConvertor`) shows CREATED AT, the creation time in RFC 3339, UTC.

Pure functions, no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kubelab.core.printing import age
from kubelab.v1 import access_pb2, meta_pb2


def created_at(meta: meta_pb2.ObjectMeta) -> str:
    """Go's `Time.UTC().Format(time.RFC3339)` of the creation time (whole seconds)."""
    when = datetime.fromtimestamp(meta.creation_timestamp.seconds, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def role_cells(role: access_pb2.Role | access_pb2.ClusterRole, now: datetime) -> list[str]:
    return [created_at(role.metadata)]


def role_ref(ref: access_pb2.RoleRef) -> str:
    return f"{ref.kind}/{ref.name}"


def subjects_strings(
    subjects: list[access_pb2.Subject],
) -> tuple[list[str], list[str], list[str]]:
    """Users, groups and service accounts (`namespace/name`) a binding names."""
    users, groups, accounts = [], [], []
    for subject in subjects:
        if subject.kind == "ServiceAccount":
            accounts.append(f"{subject.namespace}/{subject.name}")
        elif subject.kind == "User":
            users.append(subject.name)
        elif subject.kind == "Group":
            groups.append(subject.name)
    return users, groups, accounts


def binding_cells(
    binding: access_pb2.RoleBinding | access_pb2.ClusterRoleBinding, now: datetime
) -> list[str]:
    """ROLE, AGE, then the wide USERS, GROUPS, SERVICEACCOUNTS."""
    users, groups, accounts = subjects_strings(list(binding.subjects))
    return [
        role_ref(binding.role_ref),
        age(binding.metadata.creation_timestamp, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(accounts),
    ]


def service_account_cells(account: access_pb2.ServiceAccount, now: datetime) -> list[str]:
    return [str(len(account.secrets)), age(account.metadata.creation_timestamp, now)]
