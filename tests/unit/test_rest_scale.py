"""The pure parts of `deployments/<name>/scale`: a Deployment as an autoscaling/v1 Scale,
a Scale body's replicas as Kubernetes checks them, the managedFields a scale records, and
the discovery entries kubectl resolves the subresources by."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core import kinds
from kubelab.v1 import objects_pb2
from services.apiserver.rest import discovery, field_managers, subresources
from services.apiserver.rest.errors import ApiError
from services.apiserver.rest.scale import replicas_after_patch, replicas_of, scale_of


def deployment(**spec: Any) -> objects_pb2.Deployment:
    body = {
        "metadata": {"name": "shop", "namespace": "default", "resourceVersion": "7", "uid": "u"},
        "spec": {"selector": {"matchLabels": {"env": "prod", "app": "shop"}}, **spec},
        "status": {"replicas": 3},
    }
    return json_format.ParseDict(body, objects_pb2.Deployment())


def test_scale_of_a_deployment() -> None:
    scale = scale_of(deployment(replicas=4))
    assert scale == {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": "shop", "namespace": "default", "uid": "u", "resourceVersion": "7"},
        "spec": {"replicas": 4},
        "status": {"replicas": 3, "selector": "app=shop,env=prod"},
    }


def test_scale_of_a_deployment_without_replicas_is_kubernetes_default() -> None:
    assert scale_of(deployment())["spec"] == {"replicas": 1}


@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_replicas_round_trip(replicas: int) -> None:
    scale = scale_of(deployment(replicas=replicas))
    assert replicas_of(scale, "shop") == (replicas, "7")


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        pytest.param(
            {"spec": {"replicas": -1}},
            422,
            'Scale.autoscaling "shop" is invalid: spec.replicas: Invalid value: -1: '
            "must be greater than or equal to 0",
            id="negative",
        ),
        pytest.param({"spec": {"replicas": "2"}}, 422, "must be an integer", id="text"),
        pytest.param({"spec": {"replicas": True}}, 422, "must be an integer", id="bool"),
        pytest.param({"spec": {"replicas": 2**31}}, 422, "must fit in 32 bits", id="huge"),
        pytest.param([], 400, "must be a Scale object", id="not-an-object"),
        pytest.param({"kind": "Deployment"}, 400, 'not "Deployment"', id="other-kind"),
        pytest.param(
            {"metadata": {"name": "cart"}},
            400,
            "the name of the object (cart) does not match the name on the URL (shop)",
            id="other-name",
        ),
        pytest.param(
            {"metadata": {"resourceVersion": "abc"}}, 400, "resourceVersion", id="bad-version"
        ),
    ],
)
def test_replicas_of_refuses(body: Any, code: int, words: str) -> None:
    with pytest.raises(ApiError) as caught:
        replicas_of(body, "shop")
    assert caught.value.code == code
    assert words in caught.value.message
    if code == 422:
        assert caught.value.details["causes"][0]["field"] == "spec.replicas"


def test_discovery_lists_the_subresources() -> None:
    apps = discovery.aggregated(core=False)["items"]
    resources = {r["resource"]: r for g in apps for v in g["versions"] for r in v["resources"]}
    assert resources["deployments"]["subresources"] == [
        {
            "subresource": "scale",
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "verbs": ["get", "patch", "update"],
        },
        {
            "subresource": "status",
            "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "verbs": ["get", "patch", "update"],
        },
    ]
    legacy = discovery.resource_list("v1")
    assert legacy is not None
    names = {r["name"]: r for r in legacy["resources"]}
    assert names["pods/log"]["verbs"] == ["get"]
    assert names["services/status"]["verbs"] == ["get", "patch", "update"]
    assert subresources.legacy("endpoints", True) == []


def test_a_scale_records_its_manager_with_subresource_scale() -> None:
    """As Kubernetes' ScaleHandler stores it: the scaler owns spec.replicas (in apps/v1
    terms), taken from whoever set it before; everything else stays the creator's."""
    created = deployment(replicas=2)
    field_managers.update_hook(kinds.DEPLOYMENTS, "creator")(None, created)
    scaled = objects_pb2.Deployment()
    scaled.CopyFrom(created)
    scaled.spec.replicas = 5
    field_managers.update_hook(kinds.DEPLOYMENTS, "kubectl", "scale")(created, scaled)
    entries = {
        (e.manager, e.operation, e.api_version, e.subresource): json_format.MessageToDict(
            e.fields_v1
        )
        for e in scaled.metadata.managed_fields
    }
    assert entries[("kubectl", "Update", "apps/v1", "scale")] == {"f:spec": {"f:replicas": {}}}
    creator = entries[("creator", "Update", "apps/v1", "")]
    assert "f:replicas" not in creator["f:spec"] and "f:selector" in creator["f:spec"]


MERGE = "application/merge-patch+json"


@pytest.mark.parametrize(
    ("patch", "content_type", "wanted"),
    [
        pytest.param({"spec": {"replicas": 6}}, MERGE, (6, ""), id="merge-no-precondition"),
        pytest.param(
            {"spec": {"replicas": 6}},
            "application/strategic-merge-patch+json",
            (6, ""),
            id="strategic-no-precondition",
        ),
        pytest.param(
            [{"op": "replace", "path": "/spec/replicas", "value": 2}],
            "application/json-patch+json",
            (2, ""),
            id="json-patch",
        ),
        pytest.param(
            {"metadata": {"resourceVersion": "3"}, "spec": {"replicas": 6}},
            MERGE,
            (6, "3"),
            id="a-version-the-patch-sets-is-a-precondition",
        ),
    ],
)
def test_replicas_after_patch(patch: Any, content_type: str, wanted: tuple[int, str]) -> None:
    """The version the Scale was read at (7) is no precondition: a patch that lost a race
    with the controller is applied again, not refused with a 409."""
    assert replicas_after_patch(deployment(replicas=4), patch, content_type, "shop") == wanted


def test_a_patch_that_cannot_apply_is_a_status() -> None:
    with pytest.raises(ApiError) as caught:
        replicas_after_patch(deployment(replicas=4), {"spec": 1}, "text/plain", "shop")
    assert caught.value.code == 415
