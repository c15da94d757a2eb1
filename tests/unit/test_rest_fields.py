"""Field selectors of the Kubernetes HTTP API: Kubernetes' grammar and selectable fields."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core import kinds
from kubelab.v1 import objects_pb2
from services.apiserver.rest import fields
from services.apiserver.rest.errors import ApiError
from services.apiserver.rest.fields import Term


def pod(name: str, namespace: str = "default", node: str = "", phase: str = "") -> objects_pb2.Pod:
    p = objects_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, namespace
    p.spec.node_name = node
    p.status.phase = phase
    return p


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        pytest.param("", (), id="empty"),
        pytest.param("metadata.name=shop", (Term("metadata.name", "shop", True),), id="equals"),
        pytest.param("metadata.name==shop", (Term("metadata.name", "shop", True),), id="double"),
        pytest.param("spec.nodeName!=n1", (Term("spec.nodeName", "n1", False),), id="not-equal"),
        pytest.param("spec.nodeName=", (Term("spec.nodeName", "", True),), id="empty-value"),
        pytest.param(
            "metadata.namespace=default,status.phase!=Running",
            (Term("metadata.namespace", "default", True), Term("status.phase", "Running", False)),
            id="two-terms",
        ),
        pytest.param(
            r"metadata.name=a\,b\=c",
            (Term("metadata.name", "a,b=c", True),),
            id="escaped-comma-and-equals",
        ),
        pytest.param(r"metadata.name=a\\b", (Term("metadata.name", "a\\b", True),), id="backslash"),
    ],
)
def test_parse(text: str, terms: tuple[Term, ...]) -> None:
    assert fields.parse(text, kinds.PODS).terms == terms


@pytest.mark.parametrize(
    ("text", "kind", "words"),
    [
        pytest.param("spec.nodeName=n1", kinds.SERVICES, "field label not supported", id="kind"),
        pytest.param("spec.foo=x", kinds.PODS, "not supported: spec.foo", id="unknown"),
        pytest.param("metadata.name", kinds.PODS, "expected field=value", id="no-operator"),
        pytest.param(r"metadata.name=a\x", kinds.PODS, "invalid escape", id="bad-escape"),
        pytest.param("metadata.name=a=b", kinds.PODS, "unescaped", id="unescaped-equals"),
    ],
)
def test_refused(text: str, kind: kinds.KindInfo, words: str) -> None:
    with pytest.raises(ApiError) as refused:
        fields.parse(text, kind)
    assert refused.value.code == 400
    assert words in refused.value.message


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        pytest.param("", ["a", "b", "c", "d"], id="everything"),
        pytest.param("spec.nodeName=n1", ["a", "b"], id="on-a-node"),
        pytest.param("spec.nodeName=", ["d"], id="unscheduled"),
        pytest.param("spec.nodeName!=n1", ["c", "d"], id="elsewhere"),
        pytest.param("metadata.namespace=team", ["c"], id="namespace"),
        pytest.param("status.phase=Running,spec.nodeName=n1", ["a"], id="both"),
    ],
)
def test_matches(text: str, matched: list[str]) -> None:
    pods = [
        pod("a", node="n1", phase="Running"),
        pod("b", node="n1", phase="Pending"),
        pod("c", namespace="team", node="n2"),
        pod("d"),
    ]
    selector = fields.parse(text, kinds.PODS)
    assert [p.metadata.name for p in pods if selector.matches(p)] == matched


def _escape(value: str) -> str:
    return "".join("\\" + c if c in "\\,=!" else c for c in value)


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30))
def test_any_escaped_value_reads_back(value: str) -> None:
    selector = fields.parse(f"metadata.name={_escape(value)}", kinds.SERVICES)
    assert selector.terms == (Term("metadata.name", value, True),)
    svc = objects_pb2.Service()
    svc.metadata.name = value
    assert selector.matches(svc)
