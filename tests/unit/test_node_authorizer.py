"""The Node authorizer and NodeRestriction: a node agent reads what it needs and changes
only its own Node and the pods bound to it, in Kubernetes' words."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.apiserver.logic import rbac_defaults
from services.apiserver.logic.node_authorizer import (
    authorize_chain,
    authorize_node,
    node_identity,
    node_user,
)
from services.apiserver.logic.node_restriction import (
    AdmissionRequest,
    Operation,
    admission_forbidden_message,
    admit,
    forbidden_node_labels,
)
from services.apiserver.logic.rbac import Attributes, Decision, UserInfo

N1 = node_user("node-1")
SPEC_N1 = (("spec.nodeName", "node-1"),)


@pytest.mark.parametrize(
    ("user", "identity"),
    [
        pytest.param(N1, ("node-1", True), id="node"),
        pytest.param(UserInfo("system:node:node-1"), ("", False), id="not-in-group"),
        pytest.param(UserInfo("node-1", ("system:nodes",)), ("", False), id="no-prefix"),
        pytest.param(UserInfo("system:node:", ("system:nodes",)), ("", True), id="nameless"),
    ],
)
def test_node_identity(user: UserInfo, identity: tuple[str, bool]) -> None:
    assert node_identity(user) == identity


def req(
    verb: str,
    resource: str,
    sub: str = "",
    name: str = "",
    ns: str = "",
    *,
    group: str = "",
    selector: tuple[tuple[str, str], ...] = (),
) -> Attributes:
    return Attributes(N1, verb, ns, group, resource, sub, name, field_selector=selector)


ALLOW = Decision(True, "")
NO_OPINION = Decision(False, "")
UNRELATED = Decision(False, "no relationship found between node 'node-1' and this object")


@pytest.mark.parametrize(
    ("attrs", "pod_node", "decision"),
    [
        pytest.param(req("create", "nodes"), None, ALLOW, id="register"),
        pytest.param(req("get", "nodes", name="node-1"), None, ALLOW, id="read-own-node"),
        pytest.param(req("update", "nodes", "status", "node-1"), None, ALLOW, id="own-status"),
        pytest.param(
            req("patch", "nodes", name="node-2"), None, ALLOW, id="patch-left-to-admission"
        ),
        pytest.param(
            req("list", "nodes"),
            None,
            Decision(False, "node 'node-1' cannot read all nodes, only its own Node object"),
            id="list-nodes",
        ),
        pytest.param(
            req("get", "nodes", name="node-2"),
            None,
            Decision(False, "node 'node-1' cannot read 'node-2', only its own Node object"),
            id="other-node",
        ),
        pytest.param(req("delete", "nodes", name="node-1"), None, NO_OPINION, id="delete-node"),
        pytest.param(req("get", "pods", name="p", ns="d"), "node-1", ALLOW, id="own-pod"),
        pytest.param(req("get", "pods", name="p", ns="d"), "node-2", UNRELATED, id="pod-elsewhere"),
        pytest.param(req("get", "pods", name="p", ns="d"), None, UNRELATED, id="unknown-pod"),
        pytest.param(
            req("get", "pods", ns="d"), None, Decision(False, "No Object name found"), id="no-name"
        ),
        pytest.param(req("watch", "pods", selector=SPEC_N1), None, ALLOW, id="watch-own-pods"),
        pytest.param(
            req("list", "pods", selector=(("spec.nodeName", "node-2"),)),
            None,
            Decision(False, "can only list/watch pods with spec.nodeName field selector"),
            id="list-other-nodes-pods",
        ),
        pytest.param(
            req("list", "pods"),
            None,
            Decision(False, "can only list/watch pods with spec.nodeName field selector"),
            id="list-all-pods",
        ),
        pytest.param(
            req("watch", "pods", name="p", ns="d"), "node-1", ALLOW, id="watch-one-own-pod"
        ),
        pytest.param(
            req("delete", "pods", name="p", ns="d"), None, ALLOW, id="delete-to-admission"
        ),
        pytest.param(
            req("patch", "pods", "status", "p", "d"), None, ALLOW, id="status-to-admission"
        ),
        pytest.param(req("update", "pods", name="p", ns="d"), "node-1", NO_OPINION, id="pod-spec"),
        pytest.param(req("get", "pods", "log", "p", "d"), "node-1", NO_OPINION, id="pod-log"),
        pytest.param(req("watch", "services"), None, ALLOW, id="services-static-rule"),
        pytest.param(req("create", "events", ns="d"), None, ALLOW, id="events-static-rule"),
        pytest.param(req("get", "events", name="e", ns="d"), None, NO_OPINION, id="no-event-reads"),
        pytest.param(req("create", "services", ns="d"), None, NO_OPINION, id="no-service-writes"),
        pytest.param(
            Attributes(N1, "get", resource_request=False, path="/healthz"),
            None,
            NO_OPINION,
            id="path",
        ),
    ],
)
def test_authorize_node(attrs: Attributes, pod_node: str | None, decision: Decision) -> None:
    assert authorize_node(attrs, pod_node=pod_node) == decision


def test_the_node_authorizer_ignores_others_and_names_a_nameless_node() -> None:
    alice = Attributes(UserInfo("alice"), "create", "", "", "nodes")
    assert authorize_node(alice) == NO_OPINION
    nameless = Attributes(UserInfo("system:node:", ("system:nodes",)), "create", "", "", "nodes")
    assert authorize_node(nameless) == Decision(False, 'unknown node for user "system:node:"')


STATE = rbac_defaults.bootstrap_state()


# What kubelab's node agent and its in-process proxy call (node_agent/agent.py, proxy.py,
# lab_network.py), through the chain Node, RBAC.
@pytest.mark.parametrize(
    ("attrs", "pod_node"),
    [
        pytest.param(req("create", "nodes"), None, id="register"),
        pytest.param(req("update", "nodes", name="node-1"), None, id="re-register"),
        pytest.param(req("watch", "nodes"), None, id="proxy-watches-nodes"),
        pytest.param(req("list", "services"), None, id="service-env"),
        pytest.param(req("watch", "endpointslices", group="discovery.k8s.io"), None, id="proxy"),
        pytest.param(req("list", "pods", selector=SPEC_N1), None, id="own-pods"),
        pytest.param(req("get", "pods", name="p", ns="d"), "node-1", id="reread-own-pod"),
        pytest.param(req("delete", "pods", name="p", ns="d"), "node-1", id="finish-deletion"),
        pytest.param(req("update", "pods", "status", "p", "d"), "node-1", id="pod-status"),
        pytest.param(req("update", "events", name="e", ns="d"), None, id="event-count"),
    ],
)
def test_a_node_agent_may_do_its_work(attrs: Attributes, pod_node: str | None) -> None:
    assert authorize_chain(attrs, STATE, pod_node=pod_node).allowed


def test_a_refusal_joins_the_authorizers_reasons() -> None:
    decision = authorize_chain(req("list", "pods"), STATE)
    assert decision == Decision(False, "can only list/watch pods with spec.nodeName field selector")
    other = authorize_chain(req("get", "pods", name="p", ns="d"), STATE, pod_node="node-2")
    assert other == UNRELATED
    masters = Attributes(UserInfo("root", ("system:masters",)), "delete", "", "", "nodes", name="n")
    assert authorize_chain(masters, STATE) == ALLOW
    alice = Attributes(UserInfo("alice"), "get", "", "", "nodes", name="n")
    assert authorize_chain(alice, STATE) == Decision(False, "")


def admission(
    op: Operation,
    resource: str,
    sub: str = "",
    name: str = "",
    *,
    bound_node: str | None = None,
    old_labels: dict[str, str] | None = None,
    new_labels: dict[str, str] | None = None,
) -> AdmissionRequest:
    return AdmissionRequest(
        N1, op, resource, "", sub, "default", name, bound_node, old_labels or {}, new_labels or {}
    )


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        pytest.param(
            admission(Operation.UPDATE, "pods", "status", "x", bound_node="node-1"), "", id="own"
        ),
        pytest.param(
            admission(Operation.UPDATE, "pods", "status", "x", bound_node="node-2"),
            'node "node-1" can only update pod status for pods with spec.nodeName set to itself',
            id="status-elsewhere",
        ),
        pytest.param(
            admission(Operation.UPDATE, "pods", "status", "x", bound_node=None),
            'node "node-1" can only update pod status for pods with spec.nodeName set to itself',
            id="status-unbound",
        ),
        pytest.param(
            admission(
                Operation.UPDATE,
                "pods",
                "status",
                "x",
                bound_node="node-1",
                old_labels={"a": "1"},
                new_labels={},
            ),
            'node "node-1" cannot update labels through pod status',
            id="labels-through-status",
        ),
        pytest.param(
            admission(Operation.DELETE, "pods", name="x", bound_node="node-1"), "", id="delete-own"
        ),
        pytest.param(
            admission(Operation.DELETE, "pods", name="x", bound_node="node-2"),
            'node "node-1" can only delete pods with spec.nodeName set to itself',
            id="delete-elsewhere",
        ),
        pytest.param(
            admission(Operation.CREATE, "pods", name="x"),
            'pod does not have "kubernetes.io/config.mirror" annotation, node "node-1" can only '
            "create mirror pods",
            id="create-pod",
        ),
        pytest.param(
            admission(Operation.UPDATE, "pods", name="x", bound_node="node-1"),
            'unexpected operation "UPDATE", node "node-1" can only create and delete mirror pods',
            id="update-pod",
        ),
        pytest.param(
            admission(Operation.CREATE, "pods", "status", "x"),
            'unexpected operation "CREATE"',
            id="st",
        ),
        pytest.param(
            admission(Operation.CREATE, "pods", "binding", "x"),
            "unexpected pod subresource \"binding\", only 'status' and 'eviction' are allowed",
            id="subresource",
        ),
        pytest.param(
            admission(
                Operation.CREATE,
                "nodes",
                name="node-1",
                new_labels={
                    "kubernetes.io/hostname": "node-1",
                    "kubernetes.io/os": "linux",
                    "team": "a",
                },
            ),
            "",
            id="register",
        ),
        pytest.param(
            admission(Operation.UPDATE, "nodes", "status", "node-2"),
            'node "node-1" is not allowed to modify node "node-2"',
            id="other-node",
        ),
        pytest.param(
            admission(Operation.DELETE, "nodes", name="node-2"),
            'node "node-1" is not allowed to modify node "node-2"',
            id="delete-other-node",
        ),
        pytest.param(
            admission(
                Operation.CREATE,
                "nodes",
                name="node-1",
                new_labels={"node-restriction.kubernetes.io/pci": "yes", "kubernetes.io/role": "x"},
            ),
            'node "node-1" is not allowed to set the following labels: kubernetes.io/role, '
            "node-restriction.kubernetes.io/pci",
            id="forbidden-labels",
        ),
        pytest.param(
            admission(
                Operation.UPDATE,
                "nodes",
                name="node-1",
                old_labels={"example.k8s.io/tier": "a"},
                new_labels={"node.kubernetes.io/exclude": "x"},
            ),
            "is not allowed to modify labels: example.k8s.io/tier",
            id="update-labels",
        ),
        pytest.param(admission(Operation.CREATE, "services", name="s"), "", id="not-restricted"),
    ],
)
def test_node_restriction(request_: AdmissionRequest, reason: str) -> None:
    assert admit(request_) == Decision(not reason, reason)


def test_node_restriction_leaves_others_alone_and_names_the_object() -> None:
    alice = AdmissionRequest(UserInfo("alice"), Operation.UPDATE, "nodes", name="node-2")
    assert admit(alice) == Decision(True, "")
    nameless = AdmissionRequest(
        UserInfo("system:node:", ("system:nodes",)), Operation.CREATE, "nodes"
    )
    assert admit(nameless) == Decision(False, 'could not determine node from user "system:node:"')
    refused = admission(Operation.UPDATE, "pods", "status", "x", bound_node="node-2")
    assert admission_forbidden_message(refused, admit(refused).reason) == (
        'pods "x" is forbidden: node "node-1" can only update pod status for pods with '
        "spec.nodeName set to itself"
    )
    assert (
        admission_forbidden_message(admission(Operation.CREATE, "pods"), "r")
        == 'pods "Unknown" is forbidden: r'
    )


@pytest.mark.parametrize(
    ("old", "new", "forbidden"),
    [
        pytest.param(
            {},
            {"kubernetes.io/hostname": "n", "topology.kubernetes.io/zone": "z"},
            [],
            id="kubelet",
        ),
        pytest.param(
            {}, {"kubelet.kubernetes.io/x": "1", "a.node.kubernetes.io/y": "2"}, [], id="namespaces"
        ),
        pytest.param({}, {"example.com/team": "a", "plain": "b"}, [], id="not-kubernetes"),
        pytest.param({"k8s.io/x": "1"}, {"k8s.io/x": "1"}, [], id="unchanged"),
        pytest.param({"k8s.io/x": "1"}, {}, ["k8s.io/x"], id="removed"),
        pytest.param(
            {},
            {"a.node-restriction.kubernetes.io/x": "1"},
            ["a.node-restriction.kubernetes.io/x"],
            id="nr",
        ),
    ],
)
def test_forbidden_node_labels(
    old: dict[str, str], new: dict[str, str], forbidden: list[str]
) -> None:
    assert forbidden_node_labels(old, new) == forbidden


nodes = st.sampled_from(["node-1", "node-2", ""])


@given(nodes, st.sampled_from(list(Operation)), st.sampled_from(["", "status"]), nodes)
def test_a_node_never_writes_a_pod_bound_elsewhere(
    node: str, op: Operation, sub: str, bound: str
) -> None:
    request = AdmissionRequest(node_user(node), op, "pods", "", sub, "d", "x", bound_node=bound)
    if admit(request).allowed:
        assert node and bound == node and op in (Operation.UPDATE, Operation.DELETE)


@given(nodes, st.sampled_from(list(Operation)), st.sampled_from(["", "status"]), nodes)
def test_a_node_never_writes_another_node(node: str, op: Operation, sub: str, name: str) -> None:
    if admit(AdmissionRequest(node_user(node), op, "nodes", "", sub, "", name)).allowed:
        assert node and name == node
