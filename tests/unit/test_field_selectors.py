"""Field selectors: Kubernetes' grammar, the fields each kind selects on, matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core import kinds
from kubelab.v1 import meta_pb2, objects_pb2
from services.apiserver.logic import field_selectors
from services.apiserver.logic.field_selectors import FieldSelectorError, Term


def event(**involved: str) -> objects_pb2.Event:
    return objects_pb2.Event(
        metadata=meta_pb2.ObjectMeta(name="e", namespace="default"),
        involved_object=meta_pb2.ObjectReference(**involved),
        type="Warning",
        reason="Unhealthy",
        source=objects_pb2.EventSource(component="kubelet", host="node-1"),
    )


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        pytest.param("", (), id="empty"),
        pytest.param("reason=Started", (Term("reason", "Started", True),), id="equals"),
        pytest.param("reason==Started", (Term("reason", "Started", True),), id="double-equals"),
        pytest.param("type!=Normal", (Term("type", "Normal", False),), id="not-equals"),
        pytest.param(
            "involvedObject.kind=Pod,involvedObject.name=shop-1",
            (Term("involvedObject.kind", "Pod", True), Term("involvedObject.name", "shop-1", True)),
            id="two-terms",
        ),
        pytest.param("reason=a\\,b", (Term("reason", "a,b", True),), id="escaped-comma"),
        pytest.param("reason=", (Term("reason", "", True),), id="empty-value"),
    ],
)
def test_parse(text: str, terms: tuple[Term, ...]) -> None:
    assert field_selectors.parse(text, kinds.EVENTS).terms == terms


@pytest.mark.parametrize(
    ("text", "info", "message"),
    [
        pytest.param(
            "involvedObject.color=red",
            kinds.EVENTS,
            "field label not supported: involvedObject.color",
            id="unknown-event-field",
        ),
        pytest.param(
            "spec.nodeName=n", kinds.SERVICES, "field label not supported: spec.nodeName", id="svc"
        ),
        pytest.param("reason", kinds.EVENTS, "expected field=value", id="no-operator"),
        pytest.param("reason=a\\x", kinds.EVENTS, "invalid escape sequence", id="bad-escape"),
        pytest.param("reason=a=b", kinds.EVENTS, "unescaped '='", id="unescaped"),
    ],
)
def test_refused(text: str, info: kinds.KindInfo, message: str) -> None:
    with pytest.raises(FieldSelectorError, match=message):
        field_selectors.parse(text, info)


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        pytest.param("involvedObject.kind=Pod,involvedObject.name=shop-1", True, id="this-pod"),
        pytest.param("involvedObject.name=shop-2", False, id="another-pod"),
        pytest.param("involvedObject.uid=u1,type=Warning", True, id="uid-and-type"),
        pytest.param("type!=Warning", False, id="not-warning"),
        pytest.param("source=kubelet", True, id="source-component"),
        pytest.param("involvedObject.fieldPath=", True, id="unset-reads-empty"),
        pytest.param("metadata.namespace=default", True, id="metadata"),
    ],
)
def test_events_match_on_their_involved_object(text: str, matches: bool) -> None:
    selector = field_selectors.parse(text, kinds.EVENTS)
    assert selector.matches(event(kind="Pod", name="shop-1", uid="u1")) is matches


def test_pods_select_on_their_node_and_phase() -> None:
    pod = objects_pb2.Pod(spec=objects_pb2.PodSpec(node_name="node-1"))
    pod.status.phase = "Running"
    assert field_selectors.parse("spec.nodeName=node-1", kinds.PODS).matches(pod)
    assert not field_selectors.parse("status.phase=Pending", kinds.PODS).matches(pod)


def test_namespaces_select_on_their_phase() -> None:
    ns = objects_pb2.Namespace(metadata=meta_pb2.ObjectMeta(name="dev"))
    ns.status.phase = "Terminating"
    assert field_selectors.parse("status.phase=Terminating", kinds.NAMESPACES).matches(ns)
    assert field_selectors.parse("metadata.name=dev", kinds.NAMESPACES).matches(ns)


values = st.text(alphabet=st.characters(codec="ascii", exclude_characters="\x00"), max_size=12)


@given(
    st.lists(
        st.tuples(st.sampled_from(["reason", "type", "source"]), values, st.booleans()), max_size=4
    )
)
def test_printing_then_parsing_gives_the_same_selector(parts: list[tuple[str, str, bool]]) -> None:
    terms = tuple(Term(f, v, eq) for f, v, eq in parts)
    selector = field_selectors.FieldSelector(kinds.EVENTS.resource, terms)
    again = field_selectors.parse(str(selector), kinds.EVENTS)
    assert again.terms == terms
