"""Server-side apply: field sets, managedFields, conflicts, removal of unapplied fields."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.apiserver.k8s import fieldsets as fs
from services.apiserver.k8s import managed_fields as mf
from services.apiserver.k8s.fieldsets import ApplyError
from services.apiserver.k8s.managed_fields import ApplyConflict
from services.apiserver.k8s.schema import kind_schema
from services.apiserver.k8s.ssa_merge import merge
from tests.unit.k8s_values import LABELS, services

NOW = datetime(2026, 12, 7, 0, 3, 5, tzinfo=UTC)
SERVICE = kind_schema("Service").root  # type: ignore[union-attr]

# Recording 22 #92: `kubectl apply --server-side` of svc.yaml.
SSA_BODY: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"labels": {"app": "x"}, "name": "x", "namespace": "default"},
    "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}], "selector": {"app": "x"}},
}
# What the registry made of recording 08's POST (defaults filled in).
CREATED: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"labels": {"app": "x"}, "name": "x", "namespace": "default", "uid": "u1"},
    "spec": {
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        "selector": {"app": "x"},
        "sessionAffinity": "None",
        "type": "ClusterIP",
    },
}


def apply(live: Any, config: Any, manager: str = "kubectl", **kw: Any) -> Any:
    return mf.apply(live, config, manager=manager, kind="Service", api_version="v1", now=NOW, **kw)


def update(live: Any, new: Any, manager: str, **kw: Any) -> Any:
    return mf.update(live, new, manager=manager, kind="Service", api_version="v1", now=NOW, **kw)


def owners(obj: Any) -> dict[str, set[str]]:
    return {
        f"{e['manager']}/{e['operation']}": {fs.path_text(p) for p in fs.decode(e["fieldsV1"])}
        for e in obj["metadata"]["managedFields"]
    }


def with_target_port(body: Any, port: Any) -> Any:
    out = copy.deepcopy(body)
    out["spec"]["ports"][0]["targetPort"] = port
    return out


PORT = '.spec.ports[port=80,protocol="TCP"]'

# ---------------------------------------------------------------- FieldsV1


def test_the_apply_set_is_encoded_as_kubernetes_does() -> None:
    created = apply(None, SSA_BODY)
    assert created["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": "2026-12-07T00:03:05Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:ports": {
                        'k:{"port":80,"protocol":"TCP"}': {
                            ".": {},
                            "f:name": {},
                            "f:port": {},
                            "f:targetPort": {},
                        }
                    },
                    "f:selector": {},
                },
            },
        }
    ]
    # The object is the configuration (server defaults are the registry's job).
    assert {k: v for k, v in created.items() if k != "metadata"} == {
        k: v for k, v in SSA_BODY.items() if k != "metadata"
    }


def test_a_create_records_an_update_entry_with_the_new_maps() -> None:
    created = update(None, CREATED, "kubectl-client-side-apply")
    (entry,) = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == (
        "kubectl-client-side-apply",
        "Update",
        "v1",
    )
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:ports": {
                ".": {},
                'k:{"port":80,"protocol":"TCP"}': {
                    ".": {},
                    "f:name": {},
                    "f:port": {},
                    "f:protocol": {},
                    "f:targetPort": {},
                },
            },
            "f:selector": {},
            "f:sessionAffinity": {},
            "f:type": {},
        },
    }


@pytest.mark.parametrize(
    ("fields_v1", "text"),
    [
        pytest.param({"f:a": {}}, {".a"}, id="field"),
        pytest.param({"f:a": {".": {}, "f:b": {}}}, {".a", ".a.b"}, id="member-with-children"),
        pytest.param({'k:{"name":"c"}': {}}, {'[name="c"]'}, id="key"),
        pytest.param({'v:"x"': {}, "v:3": {}}, {'[="x"]', "[=3]"}, id="set-values"),
        pytest.param({"i:2": {}}, {"[2]"}, id="index"),
    ],
)
def test_fields_v1_decodes_and_round_trips(fields_v1: Any, text: set[str]) -> None:
    decoded = fs.decode(fields_v1)
    assert {fs.path_text(p) for p in decoded} == text
    assert fs.encode(decoded) == fields_v1


@pytest.mark.parametrize(
    "bad", [[], {"x:a": {}}, {"f:a": 1}, {"k:[1]": {}}, {"i:x": {}}, {"k:{": {}}]
)
def test_malformed_fields_v1_is_a_value_error(bad: Any) -> None:
    with pytest.raises(ValueError):
        fs.decode(bad)


@given(services())
def test_field_sets_round_trip_through_fields_v1(service: dict[str, Any]) -> None:
    paths = frozenset(fs.fields_of(service, SERVICE))
    assert fs.decode(json.loads(json.dumps(fs.encode(paths)))) == paths


# ---------------------------------------------------------------- apply


def test_conflict_with_client_side_apply_is_worded_as_kubernetes_words_it() -> None:
    live = update(None, CREATED, "kubectl-client-side-apply")
    before = copy.deepcopy(live)
    with pytest.raises(ApplyConflict) as caught:
        apply(live, with_target_port(SSA_BODY, 9090))
    assert str(caught.value) == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: '
        f"{PORT}.targetPort"
    )
    assert caught.value.causes() == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-client-side-apply" using v1',
            "field": f"{PORT}.targetPort",
        }
    ]
    assert live == before


def test_several_conflicts_are_listed_by_manager() -> None:
    live = apply(None, SSA_BODY, "alice")
    live = update(live, {**live, "spec": {**live["spec"], "type": "NodePort"}}, "bob")
    config = with_target_port(SSA_BODY, 1)
    config["metadata"]["labels"]["app"] = "y"
    config["spec"]["type"] = "ClusterIP"
    with pytest.raises(ApplyConflict) as caught:
        apply(live, config, "carol")
    assert str(caught.value) == (
        "Apply failed with 3 conflicts: "
        'conflicts with "alice":\n'
        "- .metadata.labels.app\n"
        f"- {PORT}.targetPort\n"
        'conflicts with "bob" using v1:\n'
        "- .spec.type"
    )


def test_same_value_is_shared_ownership_not_a_conflict() -> None:
    # Recording 20: `apply --server-side` of an object client-side apply created.
    live = update(None, CREATED, "kubectl-client-side-apply")
    after = apply(live, SSA_BODY)
    assert f"{PORT}.targetPort" in owners(after)["kubectl/Apply"]
    assert f"{PORT}.targetPort" in owners(after)["kubectl-client-side-apply/Update"]
    # The annotation kubectl then applies as "kubectl-last-applied" (recording 20 #83).
    annotation = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"},
            "name": "x",
            "namespace": "default",
        },
    }
    final = apply(after, annotation, "kubectl-last-applied")
    assert owners(final)["kubectl-last-applied/Apply"] == {
        ".metadata.annotations.kubectl.kubernetes.io/last-applied-configuration"
    }
    assert final["spec"] == after["spec"]


def test_force_takes_the_field_over() -> None:
    live = update(None, CREATED, "kubectl-client-side-apply")
    after = apply(live, with_target_port(SSA_BODY, 9090), force=True)
    assert after["spec"]["ports"][0]["targetPort"] == 9090
    assert f"{PORT}.targetPort" in owners(after)["kubectl/Apply"]
    assert f"{PORT}.targetPort" not in owners(after)["kubectl-client-side-apply/Update"]


def test_an_update_takes_fields_from_the_applier() -> None:
    live = apply(None, SSA_BODY)
    relabelled = copy.deepcopy(live)
    relabelled["metadata"]["labels"]["app"] = "y"
    after = update(live, relabelled, "kubectl-label")
    assert owners(after)["kubectl-label/Update"] == {".metadata.labels.app"}
    assert ".metadata.labels.app" not in owners(after)["kubectl/Apply"]
    # ... so the applier's next apply of the old value conflicts with kubectl-label.
    with pytest.raises(ApplyConflict, match='conflict with "kubectl-label" using v1'):
        apply(after, SSA_BODY)


def test_a_label_the_applier_stops_applying_is_removed() -> None:
    # Recordings 22-23, then the label is taken out of the file again.
    with_tier = copy.deepcopy(SSA_BODY)
    with_tier["metadata"]["labels"]["tier"] = "web"
    live = apply(apply(None, SSA_BODY), with_tier)
    assert live["metadata"]["labels"] == {"app": "x", "tier": "web"}
    after = apply(live, SSA_BODY)
    assert after["metadata"]["labels"] == {"app": "x"}
    assert ".metadata.labels.tier" not in owners(after)["kubectl/Apply"]


def test_a_field_another_manager_owns_stays_when_the_applier_drops_it() -> None:
    with_tier = copy.deepcopy(SSA_BODY)
    with_tier["metadata"]["labels"]["tier"] = "web"
    live = apply(None, with_tier)
    live = apply(live, {**with_tier, "spec": {}}, "other")
    after = apply(live, SSA_BODY)
    assert after["metadata"]["labels"] == {"app": "x", "tier": "web"}


def test_a_port_the_applier_stops_applying_is_removed_whole() -> None:
    two = copy.deepcopy(SSA_BODY)
    two["spec"]["ports"].append({"name": "https", "port": 443, "targetPort": 8443})
    live = apply(None, two)
    after = apply(live, SSA_BODY)
    assert after["spec"]["ports"] == SSA_BODY["spec"]["ports"]


def _csa_created(last_applied: Any) -> Any:
    """What recording 08's POST stored: the object with its last-applied annotation."""
    obj = copy.deepcopy(CREATED)
    text = json.dumps(last_applied, separators=(",", ":")) + "\n"
    obj["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": text}
    return update(None, obj, "kubectl-client-side-apply")


def test_kubectl_moving_a_file_to_server_side_apply_takes_its_fields_over() -> None:
    # Kubernetes' lastAppliedManager: the conflicting fields are all in the
    # last-applied configuration, so `kubectl apply --server-side` forces.
    live = _csa_created(SSA_BODY)
    changed = with_target_port(SSA_BODY, 9090)
    after = apply(live, changed)
    assert after["spec"]["ports"][0]["targetPort"] == 9090
    assert f"{PORT}.targetPort" not in owners(after)["kubectl-client-side-apply/Update"]
    # ... and the annotation now holds what was applied (lastAppliedUpdater).
    annotation = after["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"
    ]
    assert json.loads(annotation) == changed
    assert annotation.endswith("\n")
    # Another manager name gets the conflict.
    with pytest.raises(ApplyConflict, match="kubectl-client-side-apply"):
        apply(live, changed, "my-tool")


def test_kubectl_still_conflicts_on_fields_outside_the_last_applied_file() -> None:
    live = _csa_created({**SSA_BODY, "spec": {"selector": {"app": "x"}}})
    with pytest.raises(ApplyConflict) as caught:
        apply(live, with_target_port(SSA_BODY, 9090))
    assert [c.path for c in caught.value.conflicts] == [f"{PORT}.targetPort"]


def test_an_update_does_not_start_tracking_an_untracked_object() -> None:
    relabelled = copy.deepcopy(CREATED)
    relabelled["metadata"]["labels"]["env"] = "dev"
    after = update(CREATED, relabelled, "kubectl-label")
    assert "managedFields" not in after["metadata"]
    assert after == relabelled


def test_the_python_clients_apply_owns_just_its_label() -> None:
    # Recording py-2 #257: an apply body with only a label, fieldManager=py.
    live = update(None, CREATED, "kubectl-create")
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "labels": {"g": "h"}}}
    after = apply(live, body, "py")
    assert after["metadata"]["labels"] == {"app": "x", "g": "h"}
    assert owners(after)["py/Apply"] == {".metadata.labels.g"}
    assert after["spec"] == CREATED["spec"]


def test_fields_nobody_managed_belong_to_before_first_apply() -> None:
    with pytest.raises(ApplyConflict, match='conflict with "before-first-apply" using v1'):
        apply(CREATED, with_target_port(SSA_BODY, 9090))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]},
            '.spec.ports[port=80,protocol="TCP"]: duplicate entries for this key',
            id="duplicate-key",
        ),
        pytest.param(
            {"ports": [{"name": "http"}]},
            '.spec.ports: an item omits key field "port" (and it has no default)',
            id="missing-key",
        ),
        pytest.param(
            {"ports": ["80"]}, ".spec.ports: items of this list must be objects", id="not-object"
        ),
    ],
)
def test_bad_configurations_name_the_path(spec: Any, message: str) -> None:
    with pytest.raises(ApplyError) as caught:
        apply(None, {**SSA_BODY, "spec": spec})
    assert str(caught.value) == message
    assert caught.value.status_code == 422


def test_update_managers_are_capped_as_kubernetes_caps_them() -> None:
    live = apply(None, SSA_BODY)
    for n in range(12):
        new = copy.deepcopy(live)
        new["metadata"]["labels"][f"l{n}"] = "v"
        live = mf.update(
            live, new, manager=f"m{n}", kind="Service", api_version="v1", now=NOW + timedelta(n)
        )
    names = [e["manager"] for e in live["metadata"]["managedFields"] if e["operation"] == "Update"]
    assert len(names) == mf.MAX_UPDATE_MANAGERS
    assert names[0] == "ancient-changes"
    ancient = owners(live)["ancient-changes/Update"]
    assert ancient == {".metadata.labels.l0", ".metadata.labels.l1", ".metadata.labels.l2"}


# ---------------------------------------------------------------- properties


@given(services(), services())
def test_applying_the_same_configuration_twice_changes_nothing(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    once = apply(apply(None, first), second)
    later = mf.apply(
        once, second, manager="kubectl", kind="Service", api_version="v1", now=NOW + timedelta(1)
    )
    assert later == once


@given(services(), services())
def test_the_result_holds_every_value_the_configuration_sets(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    result = apply(apply(None, first, "alice"), second, "alice")
    for path in fs.fields_of(second, SERVICE):
        if path[0] in (("f", "apiVersion"), ("f", "kind")):
            continue
        assert _value_at(result, path) == _value_at(second, path)


@given(services(), LABELS, st.sampled_from(["owner", "team"]))
def test_a_field_only_its_applier_owned_is_removed_when_it_stops_applying_it(
    base: dict[str, Any], labels: dict[str, str], extra: str
) -> None:
    bigger = copy.deepcopy(base)
    bigger["metadata"]["labels"][extra] = "yes"
    live = apply(apply(None, bigger), base)
    assert extra not in live["metadata"]["labels"]
    owned = {p for e in live["metadata"]["managedFields"] for p in fs.decode(e["fieldsV1"])}
    assert (fs.field("metadata"), fs.field("labels"), fs.field(extra)) not in owned


@given(services(), services())
def test_force_never_conflicts_and_the_forcer_owns_what_it_applied(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    live = apply(None, first, "alice")
    result = apply(live, second, "bob", force=True)
    bob = next(e for e in result["metadata"]["managedFields"] if e["manager"] == "bob")
    server_owned = {
        (fs.field("apiVersion"),),
        (fs.field("kind"),),
        (fs.field("metadata"), fs.field("name")),
        (fs.field("metadata"), fs.field("namespace")),
    }
    assert fs.decode(bob["fieldsV1"]) == fs.fields_of(second, SERVICE) - server_owned
    alice = [e for e in result["metadata"]["managedFields"] if e["manager"] == "alice"]
    for entry in alice:
        for path in fs.decode(entry["fieldsV1"]):
            # The values alice still owns, bob did not change. (An empty map alice
            # applied is hers as a whole; bob may still add keys inside it.)
            if not isinstance(_value_at(first, path), dict):
                assert _value_at(result, path) == _value_at(first, path)


def _value_at(obj: Any, path: fs.Path) -> Any:
    value = obj
    for kind, content in path:
        if kind == "f":
            value = value.get(content) if isinstance(value, dict) else None
        elif kind == "k":
            value = next(
                (i for i in value or [] if fs.item_element(i, _ports(), ()) == (kind, content)),
                None,
            )
        else:
            return value
    return value


def _ports() -> Any:
    return SERVICE.fields["spec"].node.fields["ports"].node  # type: ignore[union-attr]


POD_WITH_TWIN_ENV: Any = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "default"},
    "spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]},
}


def test_a_stored_list_with_duplicate_keys_is_compared_whole_not_refused() -> None:
    live: Any = mf.update(
        None, POD_WITH_TWIN_ENV, manager="kubectl-create", kind="Pod", api_version="v1", now=NOW
    )
    twins = copy.deepcopy(live)
    twins["spec"]["containers"][0]["env"].append({"name": "A", "value": "2"})
    after: Any = mf.update(
        live, twins, manager="kubectl-edit", kind="Pod", api_version="v1", now=NOW
    )
    edit = next(e for e in after["metadata"]["managedFields"] if e["manager"] == "kubectl-edit")
    assert {fs.path_text(p) for p in fs.decode(edit["fieldsV1"])} == {
        '.spec.containers[name="c"].env'
    }


@given(services(), services())
def test_an_update_owns_exactly_what_it_changed_and_nobody_else_does(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    live = apply(None, first, "alice")
    after = update(live, {**second, "metadata": live["metadata"] | second["metadata"]}, "bob")
    diff = fs.compare(
        {k: v for k, v in live.items() if k != "metadata"} | {"metadata": {}},
        {k: v for k, v in after.items() if k != "metadata"} | {"metadata": {}},
        SERVICE,
    )
    changed = diff.added | diff.modified
    entries = {
        e["manager"]: fs.decode(e["fieldsV1"]) for e in after["metadata"].get("managedFields", [])
    }
    for path in changed:
        if path[0] == ("f", "apiVersion") or path[0] == ("f", "kind"):
            continue
        assert path in entries.get("bob", set())
        assert path not in entries.get("alice", set())


def test_keys_are_ordered_as_structured_merge_diff_orders_them() -> None:
    ports = [{"port": 443}, {"port": 80}, {"port": 80, "protocol": "UDP"}, {"port": 8080}]
    config = {**SSA_BODY, "spec": {"ports": ports}}
    entry = apply(None, config)["metadata"]["managedFields"][0]
    assert list(entry["fieldsV1"]["f:spec"]["f:ports"]) == [
        'k:{"port":80,"protocol":"TCP"}',
        'k:{"port":80,"protocol":"UDP"}',
        'k:{"port":443,"protocol":"TCP"}',
        'k:{"port":8080,"protocol":"TCP"}',
    ]
    # Fields before keys before set values; fields by name.
    assert fs.encode({(fs.field("b"),), (fs.field("a"),), (("v", '"x"'),), (("i", 0),)}) == {
        "f:a": {},
        "f:b": {},
        'v:"x"': {},
        "i:0": {},
    }
    assert list(fs.encode({(fs.field("b"),), (fs.field("a"),)})) == ["f:a", "f:b"]


def _ports_of(text: str) -> Any:
    """ "a1 b2" -> ports keyed as structured-merge-diff's test lists are keyed (key, id)."""
    protocol = {"1": "TCP", "2": "UDP", "3": "SCTP"}
    return [{"port": ord(w[0]) - 96, "protocol": protocol[w[1]]} for w in text.split()]


@pytest.mark.parametrize(
    ("lhs", "rhs", "out"),
    [
        # structured-merge-diff's typed/merge_test.go "associative list" cases.
        ("a1", "a1", "a1"),
        ("a1", "a2", "a1 a2"),
        ("a1 b1", "a1 a2", "a1 b1 a2"),
        ("b2", "a1 b2 c3", "a1 b2 c3"),
        ("a1 b2 c3", "c3 b2", "a1 c3 b2"),
        ("a1 b2 c3", "c3 a1", "b2 c3 a1"),
    ],
)
def test_associative_lists_merge_in_structured_merge_diffs_order(
    lhs: str, rhs: str, out: str
) -> None:
    merged: Any = merge(
        {"spec": {"ports": _ports_of(lhs)}}, {"spec": {"ports": _ports_of(rhs)}}, SERVICE
    )
    assert merged["spec"]["ports"] == _ports_of(out)


def test_a_configuration_nested_deeper_than_python_recurses_is_refused() -> None:
    deep: Any = 1
    for _ in range(5000):  # deeper than the recursion limit, built without recursing
        deep = {"a": deep}
    with pytest.raises(ApplyError, match="nested too deeply"):
        apply(None, {**SSA_BODY, "spec": deep})
    with pytest.raises(ApplyError, match="nested too deeply"):
        update(None, {**SSA_BODY, "spec": deep}, "m")
