"""The pure parts of `deployments/<name>/scale`: a Deployment as an autoscaling/v1 Scale,
a Scale body's replicas as Kubernetes checks them, and the discovery entries kubectl
resolves the subresources by."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

from kubelab.v1 import objects_pb2
from services.apiserver.rest import discovery, subresources
from services.apiserver.rest.errors import ApiError
from services.apiserver.rest.scale import replicas_of, scale_of


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
