"""Every kind kubelab serves, through the official `kubernetes` Python client, against a
whole cluster (apiserver, controller, three node agents: real processes).

One table row per kind drives the client's own methods (`create_namespaced_service`,
`patch_node`, ...) through every verb: create; read; list by label selector (in the
namespace and across all); replace at the resourceVersion read (and the same version
again refused, 409); a merge patch; a json-patch; a strategic merge patch using the
kind's Kubernetes merge keys (Service ports by `port`, containers by `name`), or for a
kind whose lists Kubernetes replaces whole (EndpointSlice, a Role's rules, a binding's
subjects) showing that, or for a kind
with no list (Namespace, Node, Event) strategic merge's own `$patch: replace`; the
kind's subresources (`/status`, a Deployment's `/scale`); delete, whose reply the client
parses as the type its API names; and a watch from before the create, which replays
ADDED, a MODIFIED per change and DELETED.

Kinds kubelab's actors usually write are open to users, because Kubernetes lets an
authorized user write them too (this cluster's apiserver runs without authorization): a
Node registered by hand (Kubernetes' "manual node administration") is stored and shown
NotReady (Unknown) since no node agent holds its lease, and nothing is scheduled on it; an
EndpointSlice without the `endpointslice.kubernetes.io/managed-by` label is the user's
(custom endpoints), which the controller leaves alone as Kubernetes' does; an Event may
be reported by any component. Bad input for those kinds is a 422 naming the field, never
a 500 or a reply the client cannot parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config, watch
from kubernetes.client.exceptions import ApiException

from kubelab.lab import write_kubeconfig
from kubelab.testing.processes import ApiServerProcess
from kubelab.testing.wait import until_blocking
from tests.integration.conftest import Cluster
from tests.integration.k8s_kinds import (
    CASE,
    KINDS,
    MERGE,
    NS,
    Calls,
    Json,
    Kind,
    as_json,
    labels_of,
    replace_at_read_version,
)
from tests.integration.test_k8s_client import status_of
from tests.integration.test_kubectl import Kubectl

pytestmark = pytest.mark.integration


@pytest.fixture
def api_client(apiserver: ApiServerProcess, tmp_path: Path) -> Iterator[Any]:
    path = write_kubeconfig(tmp_path, apiserver.http_url)
    with config.new_client_from_config(config_file=str(path)) as made:
        yield made


@pytest.mark.parametrize("kind", KINDS, ids=[k.id for k in KINDS])
def test_every_verb_through_the_client(kind: Kind, cluster: Cluster, api_client: Any) -> None:
    calls = Calls(kind, api_client)
    name = f"kinds-{kind.id}"
    selector = f"{CASE}={kind.id}"
    before = calls.list().metadata.resource_version

    body = {
        "metadata": {"name": name, "labels": {CASE: kind.id, "drop-me": "x"}},
        **kind.body(name),
    }
    created = as_json(api_client, calls.create(body))
    uid = created["metadata"]["uid"]
    assert created["metadata"]["name"] == name and uid
    read_back = as_json(api_client, calls.read(name))
    assert read_back["metadata"]["uid"] == uid
    assert kind.read_shows(read_back) == kind.read_expected

    listed = calls.list(label_selector=selector)
    assert [i.metadata.name for i in listed.items] == [name]
    if kind.namespaced:
        everywhere = calls.list_everywhere(label_selector=selector)
        assert [(i.metadata.namespace, i.metadata.name) for i in everywhere.items] == [(NS, name)]

    # Replace at the version read; that version again is stale.
    def label_replaced(obj: Any) -> None:
        obj.metadata.labels["replaced"] = "yes"

    read, replaced = replace_at_read_version(calls, name, label_replaced)
    assert replaced.metadata.labels["replaced"] == "yes"
    read.metadata.labels["replaced"] = "again"
    with pytest.raises(ApiException) as stale:
        calls.replace(name, read)
    assert stale.value.status == 409 and status_of(stale.value)["reason"] == "Conflict"

    merged = calls.patch(
        name, {"metadata": {"labels": {"merged": "yes", "drop-me": None}}}, _content_type=MERGE
    )
    assert {"merged", "replaced"} <= set(merged.metadata.labels)
    assert "drop-me" not in merged.metadata.labels

    json_patched = calls.patch(
        name,
        [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "add", "path": "/metadata/labels/json", "value": "yes"},
        ],
    )
    assert json_patched.metadata.labels["json"] == "yes"

    patched = as_json(api_client, calls.patch(name, kind.strategic))  # a dict: strategic
    assert kind.merged(patched) == kind.expected
    assert labels_of(patched)[CASE] == kind.id

    if kind.status_patch is not None:
        check_status(kind, calls, api_client, name)
    if kind.scale:
        check_scale(calls, api_client, name)

    reply = calls.delete(name)
    shown = as_json(api_client, reply)
    if kind.deleted == "object":
        assert shown["metadata"]["name"] == name and shown["metadata"]["uid"] == uid
    else:
        assert shown["kind"] == "Status" and shown["status"] == "Success"
        assert (shown["details"]["name"], shown["details"]["uid"]) == (name, uid)
        assert shown["details"]["kind"] == kind.id
    until_blocking(f"{name} gone", lambda: calls.code_of_read(name), lambda c: c == 404, timeout=60)

    seen = [
        (event["type"], as_json(api_client, event["object"]))
        for event in watch.Watch().stream(
            calls.method("list"),
            *calls.ns,
            label_selector=selector,
            resource_version=before,
            timeout_seconds=1,
        )
    ]
    types = [t for t, _ in seen]
    assert types[0] == "ADDED" and types[-1] == "DELETED", types
    assert set(types[1:-1]) == {"MODIFIED"}, types
    assert all(o["metadata"]["uid"] == uid for _, o in seen)
    # Each change came as its own MODIFIED event.
    for label in ("replaced", "merged", "json"):
        assert any(label in labels_of(o) for t, o in seen if t == "MODIFIED"), label
    assert any(kind.merged(o) == kind.expected for t, o in seen if t == "MODIFIED")


def check_status(kind: Kind, calls: Calls, api_client: Any, name: str) -> None:
    """`/status`: read answers the object; a patch or a replace changes only status."""
    read = as_json(api_client, calls.read(name, "_status"))
    assert read["metadata"]["name"] == name
    change = dict(kind.status_patch or {})
    change["metadata"] = {"labels": {"ignored": "yes"}}
    written = as_json(api_client, calls.patch(name, change, "_status", _content_type=MERGE))
    assert kind.status_shown(written) == kind.status_expected
    assert "ignored" not in labels_of(written)
    assert written.get("spec") == read.get("spec")
    _, replaced = replace_at_read_version(calls, name, lambda obj: None, "_status")
    assert replaced.metadata.name == name


def check_scale(calls: Calls, api_client: Any, name: str) -> None:
    """`/scale`: an autoscaling/v1 Scale read, replaced and patched; each write records
    its manager in the Deployment's managedFields with subresource `scale`. The patch
    carries no resourceVersion, so the controller writing status meanwhile (it does, the
    replicas just changed) makes it apply again, never a 409."""

    def to_one(scale: Any) -> None:
        scale.spec.replicas = 1

    read, replaced = replace_at_read_version(calls, name, to_one, "_scale")
    assert read.status.selector == f"app={name}"
    assert replaced.spec.replicas == 1
    assert scale_managers(api_client, calls, name)[("OpenAPI-Generator", "scale")] == {
        "f:spec": {"f:replicas": {}}
    }
    patched = calls.patch(name, {"spec": {"replicas": 0}}, "_scale", field_manager="kinds-scaler")
    assert patched.spec.replicas == 0
    assert calls.read(name).spec.replicas == 0
    owners = scale_managers(api_client, calls, name)
    assert owners[("kinds-scaler", "scale")] == {"f:spec": {"f:replicas": {}}}
    # The first scaler's field went to the second: it owns nothing any more.
    assert ("OpenAPI-Generator", "scale") not in owners


def scale_managers(api_client: Any, calls: Calls, name: str) -> dict[tuple[str, str], Json]:
    """The Deployment's Update entries of apps/v1 by (manager, subresource): fieldsV1."""
    deployment = as_json(api_client, calls.read(name))
    entries = deployment["metadata"]["managedFields"]
    assert all(e["apiVersion"] == "apps/v1" for e in entries)
    return {
        (e["manager"], e.get("subresource", "")): e["fieldsV1"]
        for e in entries
        if e["operation"] == "Update"
    }


BAD = [
    pytest.param(
        "node",
        {"metadata": {"name": "bad-node"}, "spec": {"podCIDR": "not-a-cidr"}},
        "spec.podCIDR",
        id="node-pod-cidr",
    ),
    pytest.param(
        "namespaced_endpoint_slice",
        {"metadata": {"name": "bad-slice"}, "addressType": "IPv7", "endpoints": []},
        "addressType",
        id="slice-address-type",
    ),
    pytest.param(
        "namespaced_endpoint_slice",
        {
            "metadata": {"name": "bad-slice"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": []}],
        },
        "endpoints[0].addresses",
        id="slice-no-address",
    ),
    pytest.param(
        "namespaced_event",
        {
            "metadata": {"name": "bad-event"},
            "involvedObject": {"kind": "Pod", "namespace": "elsewhere", "name": "p"},
        },
        "involvedObject.namespace",
        id="event-other-namespace",
    ),
    pytest.param(
        "namespaced_role_binding",
        {"metadata": {"name": "bad-binding"}, "roleRef": {"kind": "Secret", "name": "x"}},
        "roleRef.kind",
        id="binding-of-a-secret",
    ),
    pytest.param(
        "cluster_role_binding",
        {
            "metadata": {"name": "bad-binding"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "ci"}],
        },
        "subjects[0].namespace",
        id="account-without-namespace",
    ),
]


@pytest.mark.parametrize(("stem", "body", "field_path"), BAD)
def test_bad_objects_of_the_kinds_actors_write_are_422(
    api_client: Any, stem: str, body: Json, field_path: str
) -> None:
    """A Node, EndpointSlice or Event a user writes is validated like one an actor
    writes, and a binding as Kubernetes validates it: a 422 Invalid whose causes name the
    field, and nothing is stored."""
    kind = next(k for k in KINDS if k.stem == stem)
    calls = Calls(kind, api_client)
    with pytest.raises(ApiException) as refused:
        calls.create(body)
    assert refused.value.status == 422
    status = status_of(refused.value)
    assert status["reason"] == "Invalid"
    assert field_path in [c["field"] for c in status["details"]["causes"]]
    assert calls.code_of_read(body["metadata"]["name"]) == 404


def test_kubectl_scale_records_its_manager_and_dry_runs(
    api_client: Any, apiserver: ApiServerProcess, tmp_path: Path
) -> None:
    """`kubectl scale` (a merge patch of /scale, field manager from its User-Agent) owns
    spec.replicas with subresource `scale`, as `kubectl get -o yaml --show-managed-fields`
    shows against Kubernetes; `--dry-run=server` answers and writes nothing."""
    kind = next(k for k in KINDS if k.id == "deployments")
    deployments = Calls(kind, api_client)
    deployments.create({"metadata": {"name": "shop"}, **kind.body("shop")})
    kubectl = Kubectl(apiserver.http_url, tmp_path / "kubectl-home")

    out = kubectl.ok("scale", "deploy", "shop", "--replicas=3", "--dry-run=server")
    assert out.strip() == "deployment.apps/shop scaled (server dry run)"
    assert deployments.read("shop").spec.replicas == 0

    assert kubectl.ok("scale", "deploy", "shop", "--replicas=3").strip() == (
        "deployment.apps/shop scaled"
    )
    shown = json.loads(kubectl.ok("get", "deploy", "shop", "-o", "json", "--show-managed-fields"))
    assert shown["spec"]["replicas"] == 3
    by_manager = {
        (e["manager"], e.get("subresource", "")): e["fieldsV1"]
        for e in shown["metadata"]["managedFields"]
    }
    assert by_manager[("kubectl", "scale")] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in by_manager[("OpenAPI-Generator", "")]["f:spec"]
