"""The kinds kubelab serves, as rows for `test_k8s_client_kinds`: how to reach each through
the official Python client (`Calls`: the client's own methods, with or without the
namespace) and what each verb must do to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubelab.testing.wait import until_blocking

NS = "default"
CASE = "kinds-case"  # the label every object carries: list and watch select by it
MERGE = "application/merge-patch+json"
Json = dict[str, Any]


def as_json(api_client: Any, value: Any) -> Json:
    """A client model (or the dict an untyped reply is) as the JSON the server sent."""
    out: Json = api_client.sanitize_for_serialization(value)
    return out


def labels_of(obj: Json) -> dict[str, str]:
    found: dict[str, str] = obj["metadata"].get("labels") or {}
    return found


def two_containers() -> list[Json]:
    # Two echo servers on their own ports: the pods really run on the node agents.
    return [
        {
            "name": "a",
            "image": "kubelab/echo",
            "ports": [{"name": "http-a", "containerPort": 8080}],
        },
        {
            "name": "b",
            "image": "kubelab/echo",
            "ports": [{"name": "http-b", "containerPort": 8081}],
        },
    ]


def images(containers: list[Json]) -> list[tuple[str, str]]:
    return [(c["name"], c["image"]) for c in containers]


def replace_labels(kind_id: str) -> Json:
    """Strategic merge's `$patch: replace` directive on the labels (a merge patch would
    take `$patch` for a label key and fail validation)."""
    return {"metadata": {"labels": {"$patch": "replace", CASE: kind_id, "only": "this"}}}


def labels_but_case(obj: Json) -> dict[str, str]:
    return {k: v for k, v in labels_of(obj).items() if k != CASE}


RBAC = "rbac.authorization.k8s.io"


def rule(verb: str, resource: str) -> Json:
    return {"verbs": [verb], "apiGroups": [""], "resources": [resource]}


def rules_of(obj: Json) -> list[tuple[list[str], list[str]]]:
    return [(r["verbs"], r.get("resources", [])) for r in obj["rules"]]


def user(name: str) -> Json:
    return {"kind": "User", "name": name, "apiGroup": RBAC}


def subjects_of(obj: Json) -> list[tuple[str, str, str]]:
    return [(s["kind"], s["name"], s.get("namespace", "")) for s in obj["subjects"]]


@dataclass(frozen=True)
class Kind:
    id: str  # also the resource, which a delete's Status names
    api: Callable[[Any], Any]  # client.CoreV1Api, ...
    stem: str  # the client's method suffix: `namespaced_service`, `node`
    body: Callable[[str], Json]  # name -> the object to create (without metadata)
    strategic: Json  # a strategic merge patch
    merged: Callable[[Json], object]  # the part of the object the strategic patch changed
    expected: object  # ... as it must be after it
    # The delete reply: "object" (Kubernetes' registry returns it) or "status".
    deleted: str = "status"
    # /status: a merge patch of status, and the part of the reply it must show.
    status_patch: Json | None = None
    status_shown: Callable[[Json], object] = lambda obj: None
    status_expected: object = None
    scale: bool = False
    # What a read right after the create must show besides the object (None: nothing).
    read_shows: Callable[[Json], object] = lambda obj: None
    read_expected: object = None

    @property
    def namespaced(self) -> bool:
        return self.stem.startswith("namespaced_")


KINDS = [
    Kind(
        "services",
        client.CoreV1Api,
        "namespaced_service",
        lambda name: {
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}],
            }
        },
        # Ports merge by `port`: the other port stays, this one keeps its name.
        {"spec": {"ports": [{"port": 81, "targetPort": 9091}]}},
        lambda o: [(p["name"], p["port"], p["targetPort"]) for p in o["spec"]["ports"]],
        [("a", 80, 80), ("b", 81, 9091)],
        read_shows=lambda o: (o["spec"]["type"], bool(o["spec"]["clusterIP"])),
        read_expected=("ClusterIP", True),
        deleted="object",
        status_patch={"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}},
        status_shown=lambda o: o["status"]["loadBalancer"]["ingress"],
        status_expected=[{"ip": "192.0.2.7"}],
    ),
    Kind(
        "pods",
        client.CoreV1Api,
        "namespaced_pod",
        lambda name: {"spec": {"containers": two_containers(), "terminationGracePeriodSeconds": 1}},
        # Containers merge by `name`; a running pod's image may change (Kubernetes).
        {"spec": {"containers": [{"name": "b", "image": "kubelab/echo:2"}]}},
        lambda o: images(o["spec"]["containers"]),
        [("a", "kubelab/echo"), ("b", "kubelab/echo:2")],
        deleted="object",
        status_patch={"status": {"conditions": [{"type": "kinds/Checked", "status": "True"}]}},
        status_shown=lambda o: [
            c for c in o["status"]["conditions"] if c["type"] == "kinds/Checked"
        ],
        status_expected=[{"type": "kinds/Checked", "status": "True"}],
    ),
    Kind(
        "deployments",
        client.AppsV1Api,
        "namespaced_deployment",
        lambda name: {
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": two_containers(), "terminationGracePeriodSeconds": 1},
                },
            }
        },
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "b", "image": "kubelab/echo:2"}]}}
            }
        },
        lambda o: images(o["spec"]["template"]["spec"]["containers"]),
        [("a", "kubelab/echo"), ("b", "kubelab/echo:2")],
        status_patch={"status": {"observedGeneration": 99}},
        status_shown=lambda o: o["status"]["observedGeneration"],
        status_expected=99,
        scale=True,
    ),
    Kind(
        "endpointslices",
        client.DiscoveryV1Api,
        "namespaced_endpoint_slice",
        lambda name: {
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.0.2.1"]}, {"addresses": ["192.0.2.2"]}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
        # Kubernetes' endpoints list is atomic: a strategic merge replaces it whole.
        {"endpoints": [{"addresses": ["192.0.2.9"]}]},
        lambda o: [e["addresses"] for e in o["endpoints"]],
        [["192.0.2.9"]],
    ),
    Kind(
        "events",
        client.CoreV1Api,
        "namespaced_event",
        lambda name: {
            "involvedObject": {
                "kind": "Service",
                "namespace": NS,
                "name": "shop",
                "apiVersion": "v1",
            },
            "reason": "Checked",
            "message": "reported by a user",
            "type": "Normal",
            "count": 1,
            "source": {"component": "kinds-test"},
        },
        replace_labels("events"),
        labels_but_case,
        {"only": "this"},
    ),
    Kind(
        "nodes",
        client.CoreV1Api,
        "node",
        lambda name: {"spec": {"unschedulable": True}},
        replace_labels("nodes"),
        labels_but_case,
        {"only": "this"},
        # No node agent holds its lease: not ready, as Kubernetes shows a node whose
        # kubelet never posted status.
        read_shows=lambda o: [(c["type"], c["status"]) for c in o["status"]["conditions"]],
        read_expected=[("Ready", "Unknown")],
    ),
    Kind(
        "namespaces",
        client.CoreV1Api,
        "namespace",
        lambda name: {},
        replace_labels("namespaces"),
        # The apiserver puts back its immutable name label, as Kubernetes does.
        labels_but_case,
        {"only": "this", "kubernetes.io/metadata.name": "kinds-namespaces"},
        read_shows=lambda o: (o["status"]["phase"], o["spec"]["finalizers"]),
        read_expected=("Active", ["kubernetes"]),
        deleted="object",
    ),
    Kind(
        "serviceaccounts",
        client.CoreV1Api,
        "namespaced_service_account",
        lambda name: {"secrets": [{"name": "a"}], "automountServiceAccountToken": False},
        # Kubernetes merges `secrets` by name (the patch's items first, as its
        # normalizeElementOrder puts them).
        {"secrets": [{"name": "b"}]},
        lambda o: [s["name"] for s in o["secrets"]],
        ["b", "a"],
        read_shows=lambda o: o["automountServiceAccountToken"],
        read_expected=False,
        deleted="object",
    ),
    Kind(
        "roles",
        client.RbacAuthorizationV1Api,
        "namespaced_role",
        lambda name: {"rules": [rule("get", "pods"), rule("list", "services")]},
        # Kubernetes' rules list is atomic: a strategic merge replaces it whole.
        {"rules": [rule("watch", "pods")]},
        rules_of,
        [(["watch"], ["pods"])],
    ),
    Kind(
        "clusterroles",
        client.RbacAuthorizationV1Api,
        "cluster_role",
        lambda name: {
            "rules": [rule("get", "nodes"), {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]
        },
        {"rules": [rule("list", "nodes")]},
        rules_of,
        [(["list"], ["nodes"])],
    ),
    Kind(
        "rolebindings",
        client.RbacAuthorizationV1Api,
        "namespaced_role_binding",
        lambda name: {
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
            "subjects": [user("alice"), {"kind": "ServiceAccount", "name": "ci"}],
        },
        # Subjects are atomic too; the roleRef stays (it cannot change).
        {"subjects": [user("carol")]},
        subjects_of,
        [("User", "carol", "")],
        read_shows=lambda o: [s.get("apiGroup", "") for s in o["subjects"]],
        read_expected=[RBAC, ""],  # defaulted by kind, as rbac/v1 does
    ),
    Kind(
        "clusterrolebindings",
        client.RbacAuthorizationV1Api,
        "cluster_role_binding",
        lambda name: {
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": NS}],
        },
        {"subjects": [user("carol"), {"kind": "Group", "name": "devs", "apiGroup": RBAC}]},
        subjects_of,
        [("User", "carol", ""), ("Group", "devs", "")],
    ),
]


class Calls:
    """One kind's client methods, called with or without the namespace as it needs."""

    def __init__(self, kind: Kind, api_client: Any) -> None:
        self.kind = kind
        self.api = kind.api(api_client)
        self.ns: tuple[str, ...] = (NS,) if kind.namespaced else ()

    def method(self, verb: str, suffix: str = "") -> Any:
        return getattr(self.api, f"{verb}_{self.kind.stem}{suffix}")

    def create(self, body: Json) -> Any:
        return self.method("create")(*self.ns, body)

    def read(self, name: str, suffix: str = "") -> Any:
        return self.method("read", suffix)(name, *self.ns)

    def replace(self, name: str, body: Any, suffix: str = "") -> Any:
        return self.method("replace", suffix)(name, *self.ns, body)

    def patch(self, name: str, body: Any, suffix: str = "", **kw: Any) -> Any:
        return self.method("patch", suffix)(name, *self.ns, body, **kw)

    def delete(self, name: str) -> Any:
        return self.method("delete")(name, *self.ns)

    def list(self, **kw: Any) -> Any:
        return self.method("list")(*self.ns, **kw)

    def list_everywhere(self, **kw: Any) -> Any:
        stem = self.kind.stem.removeprefix("namespaced_")
        return getattr(self.api, f"list_{stem}_for_all_namespaces")(**kw)

    def code_of_read(self, name: str) -> int:
        try:
            self.read(name)
        except ApiException as err:
            return int(err.status)
        return 200


def replace_at_read_version(
    calls: Calls, name: str, change: Callable[[Any], None], suffix: str = ""
) -> tuple[Any, Any]:
    """Read, change, replace at the version read: (what was read, the reply). A 409 (the
    controller or scheduler wrote in between) reads again, as client-go's
    RetryOnConflict does; any other error fails at once."""

    def attempt() -> tuple[Any, Any] | None:
        read = calls.read(name, suffix)
        change(read)
        try:
            return read, calls.replace(name, read, suffix)
        except ApiException as err:
            if err.status != 409:
                raise
            return None

    done = until_blocking(
        f"a replace of {name}{suffix} at the version read", attempt, lambda r: r is not None
    )
    assert done is not None
    return done
