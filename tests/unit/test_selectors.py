from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core.selectors import (
    Operator,
    Requirement,
    Selector,
    SelectorError,
    SelectorSyntaxError,
    from_label_selector,
    from_match_labels,
    label_key_problems,
    label_value_problems,
    parse_selector,
)
from kubelab.v1 import meta_pb2


def req(key: str, op: Operator, *values: str) -> Requirement:
    return Requirement(key, op, frozenset(values))


EQ, NE, IN, NOTIN, EXISTS, ABSENT = (
    Operator.EQUALS,
    Operator.NOT_EQUALS,
    Operator.IN,
    Operator.NOT_IN,
    Operator.EXISTS,
    Operator.DOES_NOT_EXIST,
)

# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", (), id="empty"),
        pytest.param("   \t", (), id="blank"),
        pytest.param("env=prod", (req("env", EQ, "prod"),), id="equals"),
        pytest.param("env==prod", (req("env", EQ, "prod"),), id="double-equals"),
        pytest.param("tier!=web", (req("tier", NE, "web"),), id="not-equals"),
        pytest.param(
            "env=prod,app=shop",
            (req("app", EQ, "shop"), req("env", EQ, "prod")),
            id="two-and-sorted",
        ),
        pytest.param(
            "  env = prod ,\tapp==shop  ",
            (req("app", EQ, "shop"), req("env", EQ, "prod")),
            id="whitespace",
        ),
        pytest.param("env in (prod, staging)", (req("env", IN, "prod", "staging"),), id="in"),
        pytest.param("env in(prod,staging)", (req("env", IN, "prod", "staging"),), id="in-tight"),
        pytest.param("env notin (dev)", (req("env", NOTIN, "dev"),), id="notin"),
        pytest.param("canary", (req("canary", EXISTS),), id="exists"),
        pytest.param("!canary", (req("canary", ABSENT),), id="does-not-exist"),
        pytest.param("! canary", (req("canary", ABSENT),), id="does-not-exist-space"),
        pytest.param("env=", (req("env", EQ, ""),), id="equals-empty-value"),
        pytest.param("env!=", (req("env", NE, ""),), id="not-equals-empty-value"),
        pytest.param("env in ()", (req("env", IN, ""),), id="in-empty-parens"),
        pytest.param("env in (a,)", (req("env", IN, "a", ""),), id="in-trailing-comma"),
        pytest.param("x=in,y=notin", (req("x", EQ, "in"), req("y", EQ, "notin")), id="kw-values"),
        pytest.param("in in (notin)", (req("in", IN, "notin"),), id="kw-as-key"),
        pytest.param(
            "example.com/tier=web,kubernetes.io/os",
            (req("example.com/tier", EQ, "web"), req("kubernetes.io/os", EXISTS)),
            id="prefixed-keys",
        ),
        pytest.param(
            "app=shop,!canary,env in (prod),tier!=db",
            (
                req("app", EQ, "shop"),
                req("canary", ABSENT),
                req("env", IN, "prod"),
                req("tier", NE, "db"),
            ),
            id="mixed",
        ),
    ],
)
def test_parse_good(text: str, expected: tuple[Requirement, ...]) -> None:
    assert parse_selector(text) == Selector(expected)


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        pytest.param("env in prod", 7, "found 'prod', expected: '('", id="in-without-parens"),
        pytest.param("env=prod,", 9, "found end of string, expected: identifier", id="trailing"),
        pytest.param(",env=prod", 0, "found ',', expected: identifier", id="leading-comma"),
        pytest.param("(env)", 0, "found '(', expected: identifier", id="paren-first"),
        pytest.param("a=b=c", 3, "expected: ',' or end of string", id="two-equals"),
        pytest.param("env prod", 4, "found 'prod', expected: '='", id="missing-operator"),
        pytest.param("env in (a b)", 10, "expected: ',' or ')'", id="list-no-comma"),
        pytest.param("env in (a", 9, "found end of string, expected: ',' or ')'", id="unclosed"),
        pytest.param("env=(a)", 4, "found '(', expected: a label value", id="paren-value"),
        pytest.param("!canary=x", 7, "expected: ',' or end of string", id="not-with-value"),
        pytest.param("!", 1, "found end of string, expected: identifier", id="bare-bang"),
        pytest.param("x>1", 1, "'>' operator is not supported", id="greater-than"),
        pytest.param("in (a)", 3, "a key is missing before 'in'", id="missing-key"),
        pytest.param("Env$=x", 0, "invalid label key 'Env$'", id="bad-key-char"),
        pytest.param("-env=x", 0, "must start and end with an alphanumeric", id="bad-key-start"),
        pytest.param("a/b/c=x", 0, "a qualified name", id="two-slashes"),
        pytest.param("/a=x", 0, "prefix part must be non-empty", id="empty-prefix"),
        pytest.param("Ex.com/a=x", 0, "prefix part a lowercase RFC 1123", id="upper-prefix"),
        pytest.param("x/=y", 0, "name part must be non-empty", id="empty-name"),
        pytest.param("k" * 64, 0, "no more than 63 characters", id="long-key"),
        pytest.param("env=-prod", 4, "invalid label value '-prod'", id="bad-value"),
        pytest.param("env in (ok,b@d)", 11, "invalid label value 'b@d'", id="bad-list-value"),
        pytest.param("env=" + "v" * 64, 4, "no more than 63 characters", id="long-value"),
    ],
)
def test_parse_bad(text: str, position: int, fragment: str) -> None:
    with pytest.raises(SelectorSyntaxError) as caught:
        parse_selector(text)
    assert caught.value.position == position
    assert fragment in str(caught.value)
    assert repr(text) in str(caught.value)


# ---------------------------------------------------------------- printing


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        pytest.param("env==prod", "env=prod", id="double-equals"),
        pytest.param("env=prod,app=shop", "app=shop,env=prod", id="sorted-by-key"),
        pytest.param("env in ( staging , prod )", "env in (prod,staging)", id="sorted-values"),
        pytest.param("!canary , canary", "canary,!canary", id="exists-before-absent"),
        pytest.param("env in ()", "env in ()", id="empty-value-set"),
        pytest.param("", "", id="empty"),
    ],
)
def test_str_is_canonical(text: str, canonical: str) -> None:
    assert str(parse_selector(text)) == canonical


def test_requirements_sorted_whatever_order_given() -> None:
    a, b = req("a", EXISTS), req("b", EQ, "x")
    assert Selector((b, a)) == Selector((a, b))
    assert Selector((b, a)).requirements == (a, b)


# ---------------------------------------------------------------- matching

SHOP = "env=prod,app=shop"


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param(SHOP, {"env": "prod", "app": "shop"}, True, id="seed-exact"),
        pytest.param(SHOP, {"env": "prod", "app": "shop", "cur": "usd"}, True, id="seed-extra"),
        pytest.param(SHOP, {"env": "dev", "app": "shop"}, False, id="seed-dev"),
        pytest.param(SHOP, {"app": "shop"}, False, id="missing-key"),
        pytest.param(SHOP, {}, False, id="no-labels"),
        pytest.param("", {}, True, id="empty-matches-nothing-labelled"),
        pytest.param("", {"a": "b"}, True, id="empty-matches-all"),
        pytest.param("tier!=web", {"tier": "db"}, True, id="ne-other"),
        pytest.param("tier!=web", {"tier": "web"}, False, id="ne-same"),
        pytest.param("tier!=web", {}, True, id="ne-absent-matches"),
        pytest.param("env in (prod,staging)", {"env": "staging"}, True, id="in-member"),
        pytest.param("env in (prod,staging)", {"env": "dev"}, False, id="in-non-member"),
        pytest.param("env in (prod,staging)", {}, False, id="in-absent"),
        pytest.param("env notin (dev)", {"env": "dev"}, False, id="notin-member"),
        pytest.param("env notin (dev)", {"env": "prod"}, True, id="notin-non-member"),
        pytest.param("env notin (dev)", {}, True, id="notin-absent-matches"),
        pytest.param("canary", {"canary": ""}, True, id="exists-empty-value"),
        pytest.param("canary", {}, False, id="exists-absent"),
        pytest.param("!canary", {}, True, id="absent-absent"),
        pytest.param("!canary", {"canary": "true"}, False, id="absent-present"),
        pytest.param("env=", {"env": ""}, True, id="empty-value-equals"),
        pytest.param("env=", {}, False, id="empty-value-absent"),
        pytest.param("env in ()", {"env": ""}, True, id="in-empty-set"),
        pytest.param("app=shop,!canary", {"app": "shop", "canary": "1"}, False, id="and"),
    ],
)
def test_matches(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(selector).matches(labels) is expected


def test_everything_and_empty() -> None:
    assert Selector.everything().empty
    assert Selector.everything() == parse_selector("")
    assert Selector.everything().matches({"any": "thing"})
    assert not parse_selector("a").empty


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("key", "op", "values", "fragment"),
    [
        pytest.param("a", EQ, (), "exactly one value", id="equals-no-value"),
        pytest.param("a", NE, ("x", "y"), "exactly one value", id="not-equals-two"),
        pytest.param("a", IN, (), "can't be empty", id="in-empty"),
        pytest.param("a", EXISTS, ("x",), "must be empty", id="exists-with-value"),
        pytest.param("", EXISTS, (), "name part must be non-empty", id="empty-key"),
        pytest.param("a", EQ, ("x y",), "invalid label value", id="bad-value"),
    ],
)
def test_requirement_rejects(
    key: str, op: Operator, values: tuple[str, ...], fragment: str
) -> None:
    with pytest.raises(SelectorError, match=fragment):
        Requirement(key, op, frozenset(values))


def test_from_match_labels() -> None:
    selector = from_match_labels({"env": "prod", "app": "shop"})
    assert selector == parse_selector(SHOP)
    assert from_match_labels({}) == Selector.everything()


def test_from_label_selector() -> None:
    proto = meta_pb2.LabelSelector(
        match_labels={"app": "shop"},
        match_expressions=[
            meta_pb2.LabelSelectorRequirement(key="env", operator="In", values=["prod", "qa"]),
            meta_pb2.LabelSelectorRequirement(key="tier", operator="NotIn", values=["db"]),
            meta_pb2.LabelSelectorRequirement(key="track", operator="Exists"),
            meta_pb2.LabelSelectorRequirement(key="canary", operator="DoesNotExist"),
        ],
    )
    assert from_label_selector(proto) == parse_selector(
        "app=shop,env in (prod,qa),tier notin (db),track,!canary"
    )


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        pytest.param(
            meta_pb2.LabelSelectorRequirement(key="a", operator="Equals", values=["x"]),
            "matchExpressions[0].operator: 'Equals' is not a valid label selector operator",
            id="bad-operator",
        ),
        pytest.param(
            meta_pb2.LabelSelectorRequirement(key="a", operator="In"),
            "matchExpressions[0]: a: for 'in', 'notin' operators",
            id="in-without-values",
        ),
        pytest.param(
            meta_pb2.LabelSelectorRequirement(key="a", operator="Exists", values=["x"]),
            "must be empty",
            id="exists-with-values",
        ),
        pytest.param(
            meta_pb2.LabelSelectorRequirement(key="a b", operator="Exists"),
            "invalid label key 'a b'",
            id="bad-key",
        ),
    ],
)
def test_from_label_selector_rejects(
    expression: meta_pb2.LabelSelectorRequirement, fragment: str
) -> None:
    with pytest.raises(SelectorError) as caught:
        from_label_selector(meta_pb2.LabelSelector(match_expressions=[expression]))
    assert fragment in str(caught.value)


# ---------------------------------------------------------------- label syntax


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("app", id="plain"),
        pytest.param("A.b_c-9", id="mixed-chars"),
        pytest.param("app.kubernetes.io/name", id="prefixed"),
        pytest.param("x" * 63, id="63-name"),
        pytest.param("a" * 253 + "/n", id="253-prefix"),
    ],
)
def test_label_key_ok(key: str) -> None:
    assert label_key_problems(key) == []


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 64, id="64-name"),
        pytest.param("a" * 254 + "/n", id="254-prefix"),
        pytest.param("app_", id="ends-underscore"),
        pytest.param("app\n", id="trailing-newline"),
        pytest.param("Example.com/n", id="upper-prefix"),
        pytest.param("a/b/c", id="two-slashes"),
        pytest.param("é", id="non-ascii"),
    ],
)
def test_label_key_bad(key: str) -> None:
    assert label_key_problems(key)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        pytest.param("", True, id="empty"),
        pytest.param("prod", True, id="plain"),
        pytest.param("v1.2_3-x", True, id="mixed"),
        pytest.param("v" * 63, True, id="63"),
        pytest.param("v" * 64, False, id="64"),
        pytest.param("-x", False, id="leading-dash"),
        pytest.param("a/b", False, id="slash"),
        pytest.param("prod\n", False, id="trailing-newline"),
    ],
)
def test_label_value(value: str, ok: bool) -> None:
    assert (label_value_problems(value) == []) is ok


# ---------------------------------------------------------------- properties

_ALNUM = "abcxyzABCXYZ0189"
_NAME = st.builds(
    lambda first, middle, last: first + middle + last,
    st.sampled_from(_ALNUM),
    st.text(_ALNUM + "-_.", max_size=20),
    st.sampled_from(["", *_ALNUM]),
).filter(lambda n: n[-1] in _ALNUM)
_DNS_LABEL = st.builds(
    lambda first, middle, last: first + middle + last,
    st.sampled_from("az09"),
    st.text("az09-", max_size=8),
    st.sampled_from(["", *"az09"]),
).filter(lambda n: n[-1] != "-")
_PREFIX = st.lists(_DNS_LABEL, min_size=1, max_size=3).map(".".join)
KEYS = st.one_of(
    _NAME,
    st.builds(lambda p, n: f"{p}/{n}", _PREFIX, _NAME),
    st.sampled_from(["in", "notin", "x/in"]),
)
VALUES = st.one_of(st.just(""), _NAME, st.sampled_from(["in", "notin"]))


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    key = draw(KEYS)
    op = draw(st.sampled_from(list(Operator)))
    if op in (EQ, NE):
        values: frozenset[str] = frozenset({draw(VALUES)})
    elif op in (IN, NOTIN):
        values = draw(st.frozensets(VALUES, min_size=1, max_size=4))
    else:
        values = frozenset()
    return Requirement(key, op, values)


SELECTORS = st.lists(requirements(), max_size=6).map(lambda rs: Selector(tuple(rs)))
LABELS = st.dictionaries(st.one_of(KEYS, st.sampled_from(["env", "app"])), VALUES, max_size=6)


@given(SELECTORS)
def test_str_round_trips(selector: Selector) -> None:
    assert parse_selector(str(selector)) == selector


@given(SELECTORS, LABELS)
def test_matching_is_and_of_requirements(selector: Selector, labels: dict[str, str]) -> None:
    reparsed = parse_selector(str(selector))
    assert reparsed.matches(labels) == all(
        Selector((r,)).matches(labels) for r in selector.requirements
    )


_SELECTOR_ALPHABET = st.sampled_from([*"=!(),<> \t\n/.-_aAz09é", "in", "notin", " in ", "==", "!="])


@settings(max_examples=300)
@given(st.one_of(st.text(), st.lists(_SELECTOR_ALPHABET, max_size=20).map("".join)))
def test_random_text_only_raises_syntax_error(text: str) -> None:
    try:
        selector = parse_selector(text)
    except SelectorSyntaxError as err:
        assert 0 <= err.position <= len(text)
        return
    assert parse_selector(str(selector)) == selector
