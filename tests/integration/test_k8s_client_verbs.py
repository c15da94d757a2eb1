"""The official `kubernetes` Python client's delete_collection_* against kubelab: only what
the selectors match is deleted, the answer parses, options travel as the client sends
them (query parameters), and a bad selector or option changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubelab.lab import write_kubeconfig
from kubelab.testing.processes import ApiServerProcess
from tests.integration.test_k8s_client import body, raw, status_of

pytestmark = pytest.mark.integration


@pytest.fixture
def api_client(apiserver: ApiServerProcess, tmp_path: Path) -> Iterator[client.ApiClient]:
    path = write_kubeconfig(tmp_path, apiserver.http_url)
    with config.new_client_from_config(config_file=str(path)) as api:
        yield api


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def labelled(name: str, **labels: str) -> dict[str, Any]:
    service = body(name)
    service["metadata"]["labels"] = labels
    return service


def names(core: client.CoreV1Api, namespace: str = "default") -> list[str]:
    return sorted(s.metadata.name for s in core.list_namespaced_service(namespace).items)


def pod(name: str, **labels: str) -> dict[str, Any]:
    container = {"name": "app", "image": "busybox", "command": ["sleep", "60"]}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [container]}}


def test_delete_collection_deletes_only_what_the_selector_matches(
    core: client.CoreV1Api, apiserver: ApiServerProcess
) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_service("default", labelled(name, app=app, tier="web"))
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_service("other", labelled("a", app="x"))

    answer = core.delete_collection_namespaced_service(
        "default", label_selector="app=x", propagation_policy="Background"
    )
    assert isinstance(answer, client.V1Status)  # the client parses the answer as a Status
    assert names(core) == ["c"]
    assert names(core, "other") == ["a"], "a collection is one namespace's"

    # The wire: the deleted objects, as a ServiceList, as Kubernetes' registry answers.
    core.create_namespaced_service("default", labelled("d", app="z"))
    path = "/api/v1/namespaces/default/services?fieldSelector=metadata.name%3Dd"
    code, _, answer_bytes = raw(apiserver, "DELETE", path)
    listed = json.loads(answer_bytes)
    assert code == 200 and listed["kind"] == "ServiceList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["d"]
    assert int(listed["metadata"]["resourceVersion"]) > 0
    assert names(core) == ["c"]

    core.delete_collection_namespaced_service("default")  # no selector: all of them
    assert names(core) == []


@pytest.mark.parametrize(
    ("selectors", "words"),
    [
        pytest.param({"label_selector": "app in (x"}, "app in (x", id="bad-label-selector"),
        pytest.param({"field_selector": "spec.nope=1"}, "spec.nope", id="bad-field-selector"),
        pytest.param({"propagation_policy": "Sideways"}, "propagationPolicy", id="bad-policy"),
        pytest.param({"grace_period_seconds": -(2**40)}, "gracePeriodSeconds", id="bad-grace"),
    ],
)
def test_a_bad_request_is_refused_and_deletes_nothing(
    core: client.CoreV1Api, selectors: dict[str, Any], words: str
) -> None:
    core.create_namespaced_service("default", labelled("keep", app="x"))
    with pytest.raises(ApiException) as caught:
        core.delete_collection_namespaced_service("default", **selectors)
    assert caught.value.status in (400, 422)
    assert words in status_of(caught.value)["message"]
    assert names(core) == ["keep"]


def test_dry_run_deletes_nothing_and_a_single_delete_honours_it_too(
    core: client.CoreV1Api,
) -> None:
    core.create_namespaced_service("default", labelled("keep", app="x"))
    core.delete_collection_namespaced_service("default", label_selector="app=x", dry_run="All")
    assert names(core) == ["keep"]
    core.delete_namespaced_service("keep", "default", dry_run="All")
    assert names(core) == ["keep"]


def test_pods_nodes_and_deployments_have_deletecollection(
    api_client: client.ApiClient, core: client.CoreV1Api
) -> None:
    for name, app in (("p1", "x"), ("p2", "x"), ("p3", "y")):
        core.create_namespaced_pod("default", pod(name, app=app))
    core.delete_collection_namespaced_pod("default", label_selector="app=x", grace_period_seconds=0)
    left = [p.metadata.name for p in core.list_namespaced_pod("default").items]
    assert left == ["p3"]

    apps = client.AppsV1Api(api_client)
    template = {"metadata": {"labels": {"app": "w"}}, "spec": pod("t")["spec"]}
    spec = {"replicas": 0, "selector": {"matchLabels": {"app": "w"}}, "template": template}
    apps.create_namespaced_deployment("default", {"metadata": {"name": "w"}, "spec": spec})
    apps.delete_collection_namespaced_deployment("default", field_selector="metadata.name=w")
    assert apps.list_namespaced_deployment("default").items == []

    for name, pool in (("n1", "a"), ("n2", "b")):
        core.create_node({"metadata": {"name": name, "labels": {"pool": pool}}})
    core.delete_collection_node(label_selector="pool=a")
    assert [n.metadata.name for n in core.list_node().items] == ["n2"]


def test_deletecollection_is_not_served_where_kubernetes_has_none(
    core: client.CoreV1Api, apiserver: ApiServerProcess
) -> None:
    core.create_namespaced_service("default", labelled("keep", app="x"))
    for path in ("/api/v1/namespaces", "/api/v1/services", "/apis/apps/v1/deployments"):
        code, _, answer = raw(apiserver, "DELETE", path)
        assert code == 405, path
        assert json.loads(answer)["reason"] == "MethodNotAllowed"
    assert "default" in [n.metadata.name for n in core.list_namespace().items]
    assert names(core) == ["keep"]
