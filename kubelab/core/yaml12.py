"""The YAML dialect of manifests: YAML 1.2 core-schema scalars on top of PyYAML.

PyYAML implements YAML 1.1, whose implicit types are not Kubernetes': `on`,
`off`, `yes`, `no` read as booleans (the "Norway problem"), `010` as octal
eight, `1:30` as a sexagesimal number and `2024-01-01` as a date. Kubernetes
reads manifests with sigs.k8s.io/yaml (go-yaml), which follows the 1.2 core
schema: only true/false are booleans, `010` is ten, the rest stay strings.

`load_all` reads a stream that way: PyYAML's implicit resolvers for bool,
int, float, timestamp and `=` are replaced by the core-schema patterns (int
before float, so `8080` is an int), and a duplicate mapping key is an error,
as in kubectl, rather than last-one-wins. `dump` writes with the same
patterns as extra implicit resolvers, so every string that a YAML 1.1 *or*
1.2 reader would take for something else is quoted, and the output reads
back identically here and in kubectl. `problem` words a parse error with its
1-based line and column.

A decimal integer longer than Python converts (`sys.get_int_max_str_digits`,
4,300 digits, a guard against quadratic conversion) is read as a
`LongInteger` holding its text, for the manifest's shape check to refuse
naming the field; `parse_decimal` does the same for JSON.

Nothing here knows about Kubernetes objects; `kubelab.core.manifests` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_CORE_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.1 types the core schema does not have (timestamp, `=`) or types
# whose 1.1 spelling differs (bool, int, float): their resolvers go.
_REPLACED_TAGS = frozenset(
    {_BOOL_TAG, _INT_TAG, _FLOAT_TAG, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}
)
_CORE_RESOLVERS = (
    (_BOOL_TAG, _CORE_BOOL, list("tTfF")),
    # int before float: "8080" matches both patterns and must be an int.
    (_INT_TAG, _CORE_INT, list("-+0123456789")),
    (_FLOAT_TAG, _CORE_FLOAT, list("-+.0123456789")),
)


class _CoreSchemaLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


@dataclass(frozen=True, slots=True)
class LongInteger:
    """A decimal integer too long to convert; `text` is as written."""

    text: str


def parse_decimal(text: str) -> int | LongInteger:
    try:
        return int(text, 10)
    except ValueError:  # Only the digit limit: callers pass [-+]?[0-9]+.
        return LongInteger(text)


def _construct_core_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | LongInteger:
    text = str(loader.construct_scalar(node))
    if not _CORE_INT.match(text):
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a YAML 1.2 integer", node.start_mark
        )
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return parse_decimal(text)


_CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _first in _CORE_RESOLVERS:
    _CoreSchemaLoader.add_implicit_resolver(_tag, _regexp, _first)
_CoreSchemaLoader.add_constructor(_INT_TAG, _construct_core_int)


class _QuotingDumper(yaml.SafeDumper):
    """SafeDumper that also quotes strings a YAML 1.2 core reader would retype."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML folds NEL (U+0085) inside single-quoted and plain scalars, so the
    # text would read back changed; double quotes escape it (found by hypothesis).
    style = '"' if "\x85" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


for _tag, _regexp, _first in _CORE_RESOLVERS:
    _QuotingDumper.add_implicit_resolver(_tag, _regexp, _first)
_QuotingDumper.add_representer(str, _represent_str)


def load_all(text: str) -> Iterator[object]:
    """The documents of a YAML stream, one at a time (so a caller can tell
    which document a `yaml.YAMLError` is in), read with core-schema scalars."""
    return yaml.load_all(text, Loader=_CoreSchemaLoader)


def dump(data: dict[str, Any]) -> str:
    """Block-style YAML in the given key order, quoted for 1.1 and 1.2 readers."""
    return yaml.dump(
        data,
        Dumper=_QuotingDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 20,
    )


def problem(err: yaml.YAMLError) -> str:
    """A parse error as one line: `line 3, column 7: found duplicate key 'a'`."""
    if not isinstance(err, yaml.MarkedYAMLError):
        return str(err)
    text = err.problem or err.context or "cannot parse"
    mark = err.problem_mark or err.context_mark
    if err.context and err.problem:
        text = f"{text} ({err.context})"
    if mark is None:
        return text
    return f"line {mark.line + 1}, column {mark.column + 1}: {text}"
