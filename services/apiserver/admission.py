"""Admission that needs the request's user: RBAC's escalation prevention.

The registry runs its `admit` hook after validation and before storage, on every write
path of both fronts (create, update, patch, apply, the gRPC ApplyStream). The user is not
an argument of the registry's calls: each front sets `REQUEST_USER` (a context variable,
so the tasks a request starts see it) once it has authenticated the caller. Writes with
no user (the apiserver's own: the default RBAC policy, the system namespaces; an
apiserver started without TLS) are not checked, as Kubernetes' loopback client is
`system:masters`.

`EscalationCheck` refuses a Role or ClusterRole that grants more than its author holds,
and a binding of a role whose rules its author does not hold
(`services.apiserver.logic.escalation`), with Kubernetes' Forbidden error.
"""

from __future__ import annotations

from contextvars import ContextVar

from kubelab.core import kinds
from kubelab.core.errors import ForbiddenError
from kubelab.core.kinds import ApiObject
from kubelab.v1 import access_pb2
from services.apiserver.access import Access
from services.apiserver.logic import escalation, rbac_objects
from services.apiserver.logic.rbac import Attributes, UserInfo

REQUEST_USER: ContextVar[UserInfo | None] = ContextVar("request_user", default=None)


class EscalationCheck:
    def __init__(self, access: Access) -> None:
        self.access = access

    def _allowed(self, attrs: Attributes) -> bool:
        return self.access.decide(attrs).allowed

    def __call__(self, current: ApiObject | None, new: ApiObject) -> None:
        user = REQUEST_USER.get()
        if user is None:
            return
        refusal = self.refusal(user, new)
        if refusal is not None:
            info = kinds.info_of(new)
            raise ForbiddenError(info.qualified_resource, new.metadata.name, refusal)

    def refusal(self, user: UserInfo, new: ApiObject) -> str | None:
        if isinstance(new, access_pb2.Role | access_pb2.ClusterRole):
            namespace = new.metadata.namespace if isinstance(new, access_pb2.Role) else ""
            resource = kinds.info_of(new).resource
            rules = [rbac_objects.policy_rule(r) for r in new.rules]
            return escalation.role_refusal(
                user, resource, namespace, new.metadata.name, rules, self._allowed
            )
        if isinstance(new, access_pb2.RoleBinding | access_pb2.ClusterRoleBinding):
            namespace = new.metadata.namespace if isinstance(new, access_pb2.RoleBinding) else ""
            ref = rbac_objects.role_ref(new.role_ref)
            referenced = self.access.state.referenced_rules(ref, namespace)
            return escalation.binding_refusal(user, namespace, ref, referenced, self._allowed)
        return None
