"""Self-reviews and impersonation as Kubernetes answers them (`logic/reviews.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from services.apiserver.logic.rbac import Attributes, UserInfo
from services.apiserver.logic.reviews import (
    Impersonation,
    ImpersonationRefused,
    Review,
    ReviewError,
    access_answer,
    access_attributes,
    impersonated,
    impersonation_checks,
    impersonation_of,
    review_of,
    run_as,
    subject_answer,
)

ALICE = UserInfo("alice", ("dev", "system:authenticated"))


@pytest.mark.parametrize(
    ("path", "found"),
    [
        (
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            Review("authorization.k8s.io", "v1", "selfsubjectaccessreviews"),
        ),
        (
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Review("authentication.k8s.io", "v1", "selfsubjectreviews"),
        ),
        ("/apis/authorization.k8s.io/v1/subjectaccessreviews", None),
        ("/api/v1/namespaces/default/services", None),
        ("/apis/authorization.k8s.io/v1", None),
    ],
)
def test_review_paths(path: str, found: Review | None) -> None:
    assert review_of(path) == found


def test_a_resource_review_asks_what_its_spec_says() -> None:
    body = {
        "spec": {
            "resourceAttributes": {
                "namespace": "shop", "verb": "delete", "group": "apps",
                "resource": "deployments", "subresource": "scale", "name": "web",
            }
        }
    }  # fmt: skip
    assert access_attributes(ALICE, body) == Attributes(
        ALICE, "delete", namespace="shop", api_group="apps", resource="deployments",
        subresource="scale", name="web",
    )  # fmt: skip
    answer = access_answer(body, False, "")
    assert answer["status"] == {"allowed": False}
    assert answer["spec"] == body["spec"] and answer["kind"] == "SelfSubjectAccessReview"


def test_a_path_review() -> None:
    body = {"spec": {"nonResourceAttributes": {"path": "/api", "verb": "get"}}}
    assert access_attributes(ALICE, body) == Attributes(
        ALICE, "get", resource_request=False, path="/api"
    )


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"spec": []},
        {"spec": {}},
        {"spec": {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"verb": "get"}}},
        {"spec": {"resourceAttributes": {"verb": 5}}},
        {"spec": {"resourceAttributes": "all"}},
    ],
)
def test_a_review_that_cannot_be_answered_is_a_bad_request(body: Any) -> None:
    with pytest.raises(ReviewError):
        access_attributes(ALICE, body)


def test_whoami_answers_the_user() -> None:
    assert subject_answer(ALICE)["status"] == {
        "userInfo": {"username": "alice", "groups": ["dev", "system:authenticated"]}
    }


def test_impersonation_headers() -> None:
    headers = [
        ("Impersonate-User", "bob"),
        ("impersonate-group", "a"),
        ("Impersonate-Group", "b"),
        ("Impersonate-Extra-Scopes", "view"),
        ("Accept", "application/json"),
    ]
    assert impersonation_of(headers) == Impersonation(
        "bob", ("a", "b"), "", (("scopes", ("view",)),)
    )
    assert impersonation_of([("Accept", "x")]) is None
    with pytest.raises(ReviewError):
        impersonation_of([("Impersonate-Group", "a")])


def test_each_part_of_an_impersonation_is_checked() -> None:
    wanted = Impersonation("system:serviceaccount:ci:deployer", ("g",), "u1", (("k", ("v",)),))
    assert [
        (a.resource, a.subresource, a.namespace, a.name)
        for a in impersonation_checks(ALICE, wanted)
    ] == [
        ("serviceaccounts", "", "ci", "deployer"),
        ("groups", "", "", "g"),
        ("uids", "", "", "u1"),
        ("userextras", "k", "", "v"),
    ]
    assert all(a.verb == "impersonate" for a in impersonation_checks(ALICE, wanted))


@pytest.mark.parametrize(
    ("wanted", "groups"),
    [
        (Impersonation("bob"), ("system:authenticated",)),
        (Impersonation("bob", ("dev",)), ("dev", "system:authenticated")),
        (Impersonation("bob", ("system:unauthenticated",)), ("system:unauthenticated",)),
        (Impersonation("system:anonymous"), ()),
        (
            Impersonation("system:serviceaccount:ci:deployer"),
            ("system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"),
        ),
    ],
)
def test_the_impersonated_users_groups(wanted: Impersonation, groups: tuple[str, ...]) -> None:
    assert impersonated(wanted).groups == groups


def test_a_refused_part_stops_the_request_with_its_message() -> None:
    def refused(attrs: Attributes) -> str | None:
        return f"no {attrs.resource}" if attrs.resource == "groups" else None

    headers = [("Impersonate-User", "bob"), ("Impersonate-Group", "admins")]
    with pytest.raises(ImpersonationRefused, match="no groups"):
        run_as(ALICE, headers, refused)
    assert run_as(ALICE, headers[:1], refused).name == "bob"
    assert run_as(ALICE, [], refused) is ALICE
