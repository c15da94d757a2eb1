"""Kubernetes label selectors: parse, print, match.

This module owns the single answer to "does this selector pick these labels",
used by the EndpointSlice reconcile (a Service's `spec.selector`), the
Deployment controller (`spec.selector`) and `kubelab get -l`. The semantics
are Kubernetes' (`k8s.io/apimachinery/pkg/labels`): requirements are ANDed;
`!=` and `notin` also match an object that lacks the key; the empty selector
matches everything.

A `Selector` is a canonical value: its requirements are kept sorted (by key,
as Kubernetes sorts them), so selectors built from the same requirements
compare equal and `str()` is stable: `parse_selector(str(s)) == s`.

The text syntax is kubectl's `-l`: `env=prod,app=shop`, `env==prod`,
`tier!=web`, `env in (prod, staging)`, `env notin (dev)`, `canary`, `!canary`.
`in ()` means "in the set holding the empty value", as in Kubernetes. One
deliberate leniency: Kubernetes' lexer treats `in`/`notin` as keywords
everywhere, so a label key literally named `in` cannot be selected on; here the
position of a token decides, so every valid label key can be written.
Numeric comparisons (`>`, `<`) are not implemented.

Failures: `parse_selector` raises `SelectorSyntaxError` naming the position
and the offending token or key/value; building a `Requirement` (directly or
via `from_match_labels` / `from_label_selector`) with a bad key, value,
operator or value count raises `SelectorError`. Both are `ValueError`s and
nothing else escapes. Messages about label syntax use Kubernetes' own words
(`label_key_problems`, `label_value_problems`), which validation reuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from kubelab.v1 import meta_pb2

# ---------------------------------------------------------------- label syntax

_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT)
_QUALIFIED_NAME_MAX = 63
_DNS1123_SUBDOMAIN_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1123_SUBDOMAIN_MAX = 253
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_LABEL_VALUE_MAX = 63

# Kubernetes' wording (apimachinery/pkg/util/validation), so messages read the
# same as the ones users search for.
_NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
    f"regex used for validation is '{_QUALIFIED_NAME_FMT}')"
)
_QUALIFIED_NAME_MSG = (
    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
    f"'123-abc', regex used for validation is '{_QUALIFIED_NAME_FMT}') with an optional "
    "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    f"regex used for validation is '{_DNS1123_SUBDOMAIN_FMT}')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE_FMT}')"
)


def label_key_problems(key: str) -> list[str]:
    """Why `key` is not a valid label key (`[prefix/]name`); empty when it is."""
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        problems = []
        if len(prefix) > _DNS1123_SUBDOMAIN_MAX:
            problems.append(f"prefix part must be no more than {_DNS1123_SUBDOMAIN_MAX} characters")
        if not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
            problems.append("prefix part " + _DNS1123_SUBDOMAIN_MSG)
        if problems:
            return problems
    else:
        return [_QUALIFIED_NAME_MSG]
    if not name:
        return ["name part must be non-empty"]
    problems = []
    if len(name) > _QUALIFIED_NAME_MAX:
        problems.append(f"name part must be no more than {_QUALIFIED_NAME_MAX} characters")
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        problems.append(_NAME_PART_MSG)
    return problems


def label_value_problems(value: str) -> list[str]:
    """Why `value` is not a valid label value; empty when it is (`""` is valid)."""
    problems = []
    if len(value) > _LABEL_VALUE_MAX:
        problems.append(f"must be no more than {_LABEL_VALUE_MAX} characters")
    if not _LABEL_VALUE_RE.fullmatch(value):
        problems.append(_LABEL_VALUE_MSG)
    return problems


# ---------------------------------------------------------------- values


class SelectorError(ValueError):
    """A selector that cannot be built: bad key, value, operator or value count."""


class SelectorSyntaxError(SelectorError):
    """Text that is not a label selector; `position` is the 0-based offset."""

    def __init__(self, text: str, position: int, reason: str) -> None:
        self.text = text
        self.position = position
        self.reason = reason
        super().__init__(f"invalid selector {text!r}: at position {position}: {reason}")


class Operator(StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


_OPERATOR_RANK = {op: i for i, op in enumerate(Operator)}
_SINGLE_VALUE = frozenset({Operator.EQUALS, Operator.NOT_EQUALS})
_SET_VALUE = frozenset({Operator.IN, Operator.NOT_IN})


@dataclass(frozen=True, slots=True)
class Requirement:
    """One clause of a selector: `key <operator> values`.

    `=`/`!=` hold exactly one value, `in`/`notin` at least one, `exists` and
    `!` none (Kubernetes' `NewRequirement` rules).
    """

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        problems = label_key_problems(self.key)
        if problems:
            raise SelectorError(f"invalid label key {self.key!r}: {'; '.join(problems)}")
        if self.operator in _SINGLE_VALUE and len(self.values) != 1:
            raise SelectorError(
                f"{self.key}: exactly one value is required for the {self.operator.value!r} "
                f"operator, got {len(self.values)}"
            )
        if self.operator in _SET_VALUE and not self.values:
            raise SelectorError(
                f"{self.key}: for 'in', 'notin' operators, values set can't be empty"
            )
        if self.operator not in _SINGLE_VALUE | _SET_VALUE and self.values:
            raise SelectorError(
                f"{self.key}: values set must be empty for exists and does not exist"
            )
        for value in self.values:
            problems = label_value_problems(value)
            if problems:
                raise SelectorError(
                    f"{self.key}: invalid label value {value!r}: {'; '.join(problems)}"
                )

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        match self.operator:
            case Operator.EQUALS | Operator.IN:
                return present and labels[self.key] in self.values
            case Operator.NOT_EQUALS | Operator.NOT_IN:
                # Kubernetes: an object without the key satisfies "!=" and "notin".
                return not present or labels[self.key] not in self.values
            case Operator.EXISTS:
                return present
            case Operator.DOES_NOT_EXIST:
                return not present

    def _sort_key(self) -> tuple[str, int, tuple[str, ...]]:
        return (self.key, _OPERATOR_RANK[self.operator], tuple(sorted(self.values)))

    def __str__(self) -> str:
        match self.operator:
            case Operator.EXISTS:
                return self.key
            case Operator.DOES_NOT_EXIST:
                return f"!{self.key}"
            case Operator.EQUALS | Operator.NOT_EQUALS:
                (value,) = self.values
                return f"{self.key}{self.operator.value}{value}"
            case Operator.IN | Operator.NOT_IN:
                return f"{self.key} {self.operator.value} ({','.join(sorted(self.values))})"


@dataclass(frozen=True, slots=True)
class Selector:
    """Requirements that must all hold. No requirements: matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.requirements, key=Requirement._sort_key))
        object.__setattr__(self, "requirements", ordered)

    @classmethod
    def everything(cls) -> Selector:
        return cls(())

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (Kubernetes' `Empty()`)."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def from_match_labels(labels: Mapping[str, str]) -> Selector:
    """The selector of a label map: a Service's `spec.selector`, `matchLabels`.

    An empty map gives the empty selector, which matches everything. A Service
    with no selector means "endpoints managed by someone else" (Kubernetes'
    EndpointSlice controller skips it); callers decide that before asking here.
    """
    return Selector(
        tuple(Requirement(k, Operator.EQUALS, frozenset((v,))) for k, v in labels.items())
    )


_EXPRESSION_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def from_label_selector(selector: meta_pb2.LabelSelector) -> Selector:
    """A Deployment's `spec.selector`: matchLabels AND every matchExpression.

    Errors name the part at fault relative to the LabelSelector
    (`matchExpressions[1].operator: ...`).
    """
    requirements = list(from_match_labels(selector.match_labels).requirements)
    for i, expr in enumerate(selector.match_expressions):
        operator = _EXPRESSION_OPERATORS.get(expr.operator)
        if operator is None:
            raise SelectorError(
                f"matchExpressions[{i}].operator: {expr.operator!r} is not a valid label "
                f"selector operator; supported: {', '.join(_EXPRESSION_OPERATORS)}"
            )
        try:
            requirements.append(Requirement(expr.key, operator, frozenset(expr.values)))
        except SelectorError as err:
            raise SelectorError(f"matchExpressions[{i}]: {err}") from None
    return Selector(tuple(requirements))


# ---------------------------------------------------------------- text syntax

# Kubernetes' lexer: these characters are symbols, whitespace separates, and
# every other run of characters is an identifier (validated afterwards).
_SYMBOLS = frozenset("=!(),<>")
_WHITESPACE = frozenset(" \t\r\n")

_IDENT = "identifier"
_EOS = "end of string"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # _IDENT, _EOS, or the symbol itself ("=", "==", "!=", "!", "(", ...)
    text: str
    position: int

    def describe(self) -> str:
        return _EOS if self.kind == _EOS else repr(self.text)


def _lex(text: str) -> list[_Token]:
    tokens = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
        elif ch in _SYMBOLS:
            symbol = text[i : i + 2] if text[i : i + 2] in ("==", "!=") else ch
            tokens.append(_Token(symbol, symbol, i))
            i += len(symbol)
        else:
            start = i
            while i < len(text) and text[i] not in _SYMBOLS and text[i] not in _WHITESPACE:
                i += 1
            tokens.append(_Token(_IDENT, text[start:i], start))
    tokens.append(_Token(_EOS, "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = _lex(text)
        self._next = 0

    def parse(self) -> Selector:
        if self._peek().kind == _EOS:
            return Selector.everything()
        requirements = []
        while True:
            requirements.append(self._requirement())
            token = self._take()
            if token.kind == _EOS:
                return Selector(tuple(requirements))
            if token.kind != ",":
                raise self._error(token, f"found {token.describe()}, expected: ',' or {_EOS}")

    def _peek(self) -> _Token:
        return self._tokens[self._next]

    def _take(self) -> _Token:
        token = self._tokens[self._next]
        if token.kind != _EOS:
            self._next += 1
        return token

    def _error(self, token: _Token, reason: str) -> SelectorSyntaxError:
        return SelectorSyntaxError(self._text, token.position, reason)

    def _key(self) -> str:
        token = self._take()
        if token.kind != _IDENT:
            raise self._error(token, f"found {token.describe()}, expected: {_IDENT}")
        problems = label_key_problems(token.text)
        if problems:
            raise self._error(token, f"invalid label key {token.text!r}: {'; '.join(problems)}")
        return token.text

    def _value(self, token: _Token | None) -> str:
        """The value `token` spells; None means the value was left empty."""
        if token is None:
            return ""
        problems = label_value_problems(token.text)
        if problems:
            raise self._error(token, f"invalid label value {token.text!r}: {'; '.join(problems)}")
        return token.text

    def _requirement(self) -> Requirement:
        if self._peek().kind == "!":
            self._take()
            return self._build(self._key(), Operator.DOES_NOT_EXIST, ())
        key_token = self._peek()
        key = self._key()
        if self._peek().kind in (",", _EOS):
            return self._build(key, Operator.EXISTS, ())
        token = self._take()
        if token.kind in ("=", "==", "!="):
            operator = Operator.NOT_EQUALS if token.kind == "!=" else Operator.EQUALS
            follow = self._peek()
            if follow.kind in (",", _EOS):
                return self._build(key, operator, ("",))
            if follow.kind != _IDENT:
                raise self._error(follow, f"found {follow.describe()}, expected: a label value")
            return self._build(key, operator, (self._value(self._take()),))
        if token.kind == _IDENT and token.text in ("in", "notin"):
            operator = Operator.IN if token.text == "in" else Operator.NOT_IN
            return self._build(key, operator, self._value_list())
        if token.kind in ("<", ">"):
            raise self._error(token, f"the {token.text!r} operator is not supported by kubelab")
        expected = "'=', '==', '!=', 'in', 'notin', ',' or " + _EOS
        if key_token.text in ("in", "notin") and token.kind == "(":
            expected += f" (a key is missing before {key_token.text!r})"
        raise self._error(token, f"found {token.describe()}, expected: {expected}")

    def _value_list(self) -> list[str]:
        opening = self._take()
        if opening.kind != "(":
            raise self._error(opening, f"found {opening.describe()}, expected: '('")
        values = []
        while True:
            # An omitted value is the empty value: "()" and "(a,)" as in Kubernetes.
            values.append(self._value(self._take() if self._peek().kind == _IDENT else None))
            token = self._take()
            if token.kind == ")":
                return values
            if token.kind != ",":
                raise self._error(token, f"found {token.describe()}, expected: ',' or ')'")

    def _build(self, key: str, operator: Operator, values: Iterable[str]) -> Requirement:
        try:
            return Requirement(key, operator, frozenset(values))
        except SelectorError as err:
            # Unreachable with this grammar; kept so only SelectorSyntaxError escapes parse.
            raise SelectorSyntaxError(self._text, self._peek().position, str(err)) from None


def parse_selector(text: str) -> Selector:
    """Parse kubectl `-l` text; the empty (or blank) string selects everything."""
    return _Parser(text).parse()
