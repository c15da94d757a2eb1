"""What the documentation (README.md, docs/*.md) points at: relative links, the anchors they
may name, and the repository paths it names in backticks.

Pure (no I/O): tests/unit/test_docs.py reads the pages and checks every target exists, so a
moved file or a renamed heading breaks a test, not a newcomer's click.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from typing import Literal

_FENCE = re.compile(r"^\s*```")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
# [text](target), [text](target "title") or [text](target 'title'); images too (a leading
# `!` changes nothing).
_LINK = re.compile(r"""\[[^\]\n]*\]\(([^()\s]+)(?:\s+(?:"[^"]*"|'[^']*'))?\)""")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
# A span that may be a path: no blanks, quotes, `:`, `$`, `=`, `<`, `@` (commands,
# addresses, selectors, placeholders and URLs have them).
_PATHLIKE = re.compile(r"^[\w.*{},/-]+$")
# What a path to a file of this repository ends with (a span without `/` is checked only
# when it names a Python file: `test_dns.py`; `kubelab.v1` or `shop.yaml` are words too).
SOURCE_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".proto", ".sh", ".toml", ".cfg")
_ISSUE = re.compile(r"\bissues?\s+#?\d+|(?<![\w&/#])#\d+\b", re.IGNORECASE)

Mention = Literal["path", "name"]


def _prose(markdown: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line outside fenced blocks."""
    fenced = False
    for number, line in enumerate(markdown.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield number, line


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, blanks to `-`."""
    text = _CODE_SPAN.sub(r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor the page's headings make (a repeated heading gets `-1`, `-2`, ...)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose(markdown):
        heading = _HEADING.match(line)
        if not heading:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(markdown: str) -> list[tuple[int, str]]:
    """The relative links of a page (target as written, `#anchor` kept), with their line;
    links to other sites and links inside code are left out."""
    found: list[tuple[int, str]] = []
    for number, line in _prose(markdown):
        for target in _LINK.findall(_CODE_SPAN.sub("", line)):
            if not _SCHEME.match(target):
                found.append((number, target))
    return found


def path_mentions(markdown: str, roots: Collection[str]) -> list[tuple[int, str, Mention]]:
    """The repository paths a page names in backticks, outside code blocks: a `path` starts
    with one of the repository's top-level `roots` (`kubelab/store/batching.py`,
    `services/*`), or has a `/` and a source file's suffix (`shared/DESIGN.md`); a `name` is
    a bare Python file name (`test_dns.py`), found anywhere in the repository."""
    found: list[tuple[int, str, Mention]] = []
    for number, line in _prose(markdown):
        for span in _CODE_SPAN.findall(line):
            kind = mention_kind(span, roots)
            if kind is not None:
                found.append((number, span, kind))
    return found


def mention_kind(span: str, roots: Collection[str]) -> Mention | None:
    if not _PATHLIKE.match(span) or span.startswith(("/", "-")):
        return None
    if "/" in span:
        first = span.split("/", 1)[0]
        if first in roots or span.endswith(SOURCE_SUFFIXES):
            return "path"
        return None
    return "name" if span.endswith(".py") else None


def brace_expansions(pattern: str) -> list[str]:
    """`a/{b,c}/d` as `a/b/d` and `a/c/d` (one level of braces, as the docs write them)."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [f"{head}{choice}{tail}" for choice in match.group(1).split(",")]


def issue_numbers(markdown: str) -> list[tuple[int, str]]:
    """Issue numbers in prose (`issue #5`, `(#12)`): the tracker's history, not a reader's."""
    found: list[tuple[int, str]] = []
    for number, line in _prose(markdown):
        for match in _ISSUE.finditer(_CODE_SPAN.sub("", line)):
            found.append((number, match.group(0)))
    return found
