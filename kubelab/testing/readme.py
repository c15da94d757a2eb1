"""The documentation's commands, as a test runs them: fenced blocks, the commands in them,
the output shown under each, and a loose comparison of that output with a real one.

The documentation is the README and the pages its "Documentation" section links (docs/*.md),
read in that order (`documentation_pages`, `documented_commands`): a page's commands may rely
on what the commands before them, the README's included, left in the cluster.

Pure (no I/O; files are read through the caller's `read`): tests/integration/
test_readme_commands.py and tests/lab/test_readme_lab.py run what this finds;
tests/unit/test_readme_blocks.py pins the parsing down.

* ```sh blocks: every line is a command (`\\` continuations joined, `#` comments kept: bash
  drops them); no output is shown, so only the exit code is checked.
* ```console blocks: `$ ` lines are commands (a `<<'EOF'` here-document takes the lines up to
  its delimiter along), the lines under one are its output as the README shows it.
* ```python blocks: one command each, the whole block.

Shown output is compared by shape, not by value: addresses, numbers, ages, uids and the
random suffixes of generated names (`shop-8wdzhbbfjm-f7bbq`, `shop-pg4ng`) match any value
of their kind; column padding matches any run of blanks; a `...` line matches any number of
lines. Table rows may come in another order (they are sorted by name, and names carry random
suffixes).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from kubelab.core.names import SAFE_ALPHABET

Kind = Literal["embedded", "lab", "suite", "placeholder", "python"]

README = "README.md"
DOCUMENTATION = "Documentation"  # the README's section that links the pages, in reading order

_FENCE = re.compile(r"^```(\w*)\s*$")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$")
_HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")
# `<podIP>`, `<a node agent's pid from kubelab status>`: the reader fills these in.
_PLACEHOLDER = re.compile(r"<[A-Za-z][^<>]*>")
_KEYWORDS = {"for", "in", "do", "done", "while", "until", "if", "then", "else", "fi", "!"}
# Commands that change the cluster (a rough cut, for README lines).
_CHANGES = re.compile(
    r"\bkube(lab|ctl)\s+(apply|create|delete|label|annotate|scale|patch|replace|set|up|down)\b"
    r"|\bmake\b|\bkill\b|-X\s*POST"
)
# Output that says the command failed, as kubelab and kubectl word it.
_FAILURE = re.compile(r'^(error:|Error from server \(|The \w+ "[^"]*" is invalid)')


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # line of the block's first content line in its page (1-based)
    lines: tuple[str, ...]
    section: str  # the nearest heading above the block


@dataclass(frozen=True)
class Command:
    line: int  # line of the command in its page
    text: str  # what bash (or python) runs: continuations joined, here-document included
    expected: tuple[str, ...]  # the output shown under it (console blocks only)
    lang: str
    section: str
    page: str = README  # the file it is in, relative to the repository

    @property
    def where(self) -> str:
        """`README.md:43`, `docs/walkthrough.md:12`: where a reader finds it."""
        return f"{self.page}:{self.line}"

    @property
    def head(self) -> str:
        """The command's first line without its comment: what names it in a report."""
        return strip_comment(self.text.splitlines()[0]).strip()

    @property
    def kind(self) -> Kind:
        head = self.head
        if self.lang == "python":
            return "python"
        if head == "make test":
            return "suite"
        # compose/lab.kubeconfig too: `make lab` writes it (against the embedded cluster,
        # kubectl without it would fall back to localhost:8080 and answer by accident).
        if "compose/compose.sh" in head or "compose/lab." in head or re.match(r"make lab\b", head):
            return "lab"
        if _PLACEHOLDER.search(head.replace("<<", "")):
            return "placeholder"
        return "embedded"

    @property
    def watches(self) -> bool:
        """Runs until stopped (`get -w`, `logs -f`, a Python watch loop)."""
        if self.lang == "python":
            return ".watch(" in self.text
        words = self.head.split()
        return (
            "-w" in words
            or "--watch" in words
            or (words[:2] == ["kubelab", "logs"] and "-f" in words)
        )

    @property
    def changes_state(self) -> bool:
        """It changes the cluster (so it is run once, never retried)."""
        return self.lang == "python" or bool(_CHANGES.search(self.head))

    @property
    def expects_failure(self) -> bool:
        """The README shows an error under it: it must exit non-zero."""
        return bool(self.expected) and any(_FAILURE.match(line) for line in self.expected)

    @property
    def tools(self) -> tuple[str, ...]:
        """The programs the command runs, in order, each once."""
        if self.lang == "python":
            return ("python",)
        return command_names(self.head)


def command_names(line: str) -> tuple[str, ...]:
    """The programs a line of bash runs: the words in command position (a rough cut of
    bash's grammar, enough for README lines: pipes, lists, `$(...)`, for loops)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    found: list[str] = []
    at_start, skip = True, False
    try:
        tokens = list(lexer)
    except ValueError:  # an unclosed quote: not bash, a placeholder's words
        return tuple(line.split()[:1])
    for token in tokens:
        if token[0] in "<>":  # a redirection: its target is a file, not a command
            skip = True
        elif token[0] in "|&;()":  # after `)`, as after a command's word: no command
            at_start, skip = token[0] != ")", False
        elif skip or not at_start or token in _KEYWORDS or token == "$" or "=" in token:
            skip = skip or token == "for"  # `for x in a b c`: none of those run
        else:
            if token not in found:
                found.append(token)
            at_start = False
    return tuple(found)


def strip_comment(line: str) -> str:
    """`line` without a trailing bash comment (a `#` after a blank, outside quotes)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def blocks(markdown: str) -> list[Block]:
    """The fenced blocks of a Markdown text, with the language each is marked with."""
    found: list[Block] = []
    section = ""
    lang: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(markdown.splitlines(), start=1):
        fence = _FENCE.match(line)
        if lang is None:
            heading = _HEADING.match(line)
            if heading:
                section = heading.group(1).strip()
            elif fence:
                lang, start, body = fence.group(1), number + 1, []
        elif line.startswith("```"):
            found.append(Block(lang, start, tuple(body), section))
            lang = None
        else:
            body.append(line)
    return found


def commands(block: Block, page: str = README) -> list[Command]:
    """The commands of one block, in order."""
    if block.lang == "python":
        text = "\n".join(block.lines) + "\n"
        return [Command(block.line, text, (), "python", block.section, page)]
    if block.lang not in ("sh", "console", "bash", "shell"):
        return []
    console = block.lang == "console"
    found: list[Command] = []
    i = 0
    lines = block.lines
    while i < len(lines):
        line = lines[i]
        if console and not line.startswith("$ "):
            i += 1  # output of no command (the block opens with it): nothing to run
            continue
        text = line[2:] if console else line
        number = block.line + i
        i += 1
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        while text.endswith("\\") and i < len(lines):
            more = lines[i][2:] if lines[i].startswith("> ") else lines[i]
            text = f"{text[:-1].rstrip()} {more.lstrip()}"
            i += 1
        heredoc = _HEREDOC.search(strip_comment(text))
        if heredoc:
            body = []
            while i < len(lines):
                body.append(lines[i])
                i += 1
                if lines[i - 1].strip() == heredoc.group(1):
                    break
            text = "\n".join([text, *body])
        output: list[str] = []
        while console and i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        while output and not output[-1].strip():
            output.pop()
        found.append(Command(number, text, tuple(output), block.lang, block.section, page))
    return found


def readme_commands(markdown: str, page: str = README) -> list[Command]:
    return [command for block in blocks(markdown) for command in commands(block, page)]


_LINK = re.compile(r"\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")


def documentation_pages(readme: str) -> list[str]:
    """The pages the README's "Documentation" section links, in its order, each once
    (relative to the repository, anchors dropped): the order a reader takes them in."""
    found: list[str] = []
    section = ""
    fenced = False
    for line in readme.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        heading = None if fenced else _HEADING.match(line)
        if heading:
            section = heading.group(1).strip()
            continue
        if section != DOCUMENTATION or fenced:
            continue
        for target in _LINK.findall(line):
            path = target.split("#", 1)[0]
            if path.endswith(".md") and "://" not in path and path not in found:
                found.append(path)
    return found


def documented_commands(readme: str, read: Callable[[str], str]) -> list[Command]:
    """The commands of the README, then of each page it documents, in reading order;
    `read(page)` returns a page's text."""
    found = readme_commands(readme)
    for page in documentation_pages(readme):
        found += readme_commands(read(page), page)
    return found


_BENCH = re.compile(r"`((?:\.venv/bin/)?python3? bench/\w+\.py(?: [^`]*)?)`")


def bench_commands(markdown: str) -> list[tuple[int, str]]:
    """The benchmark commands the prose gives (`.venv/bin/python bench/dns.py --skip-qps`),
    with their line, each once: minutes each, so a test can only check they start."""
    found: dict[str, int] = {}
    for number, line in enumerate(markdown.splitlines(), start=1):
        for match in _BENCH.finditer(line):
            found.setdefault(match.group(1), number)
    return [(number, text) for text, number in found.items()]


def documented_bench_commands(
    readme: str, read: Callable[[str], str]
) -> list[tuple[str, int, str]]:
    """The benchmark commands of the README and the pages it documents, in reading order,
    each once: (page, line, command)."""
    found: dict[str, tuple[str, int]] = {}
    pages = [(README, readme)] + [(page, read(page)) for page in documentation_pages(readme)]
    for page, text in pages:
        for number, command in bench_commands(text):
            found.setdefault(command, (page, number))
    return [(page, number, command) for command, (page, number) in found.items()]


# ---- output shapes ----------------------------------------------------------------------

_IP = r"\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?::\d+)?(?:/(?:TCP|UDP|SCTP))?"
# Kubernetes' generateName alphabet: no vowels, no 0, 1, 3 (so no words, no look-alikes).
_RANDOM = f"[{SAFE_ALPHABET}]"
_VARIABLE = re.compile(
    "|".join(
        (
            r"(?P<uid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
            # The README shows `<pending>` a few milliseconds before an address appears.
            r"(?P<pending><pending>)",
            # A list of addresses is as long as the cluster makes it.
            rf"(?P<ips>{_IP}(?:,{_IP})*)",
            rf"(?<![\w.-])(?P<name>[a-z][a-z0-9]*(?:-[a-z0-9]+)*?)(?P<suffix>(?:-{_RANDOM}{{6,10}})?-{_RANDOM}{{5}})(?![\w-])",
            r"(?P<age>(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+)(?![\w.])",
            r"(?P<number>\d+(?:\.\d+)?)",
            r"(?P<blanks>(?<=\S)[ \t]+)",
        )
    )
)
_REPLACEMENT = {
    "uid": r"[0-9a-f-]{36}",
    "pending": rf"(?:<pending>|{_IP})",
    "ips": rf"{_IP}(?:,{_IP})*",
    "age": r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+",
    "number": r"\d+(?:\.\d+)?",
    "blanks": r"[ \t]+",
}
# Column names may be two words ("NOMINATED NODE"); columns are two blanks or more apart.
_COLUMN = r"[A-Z][A-Z0-9()/-]*(?: [A-Z][A-Z0-9()/-]*)*"
_TABLE_HEADER = re.compile(rf"^\s*{_COLUMN}(?:\s{{2,}}{_COLUMN})+\s*$")


def is_gap(line: str) -> bool:
    """`...` alone on a line (with a comment, maybe): any number of lines go there."""
    stripped = line.strip()
    return stripped.startswith("...") and not strip_comment(stripped)[3:].strip()


def line_pattern(shown: str) -> re.Pattern[str]:
    """A README output line as a pattern of its shape."""
    parts: list[str] = []
    end = 0
    shown = shown.rstrip()
    for found in _VARIABLE.finditer(shown):
        parts.append(re.escape(shown[end : found.start()]))
        kind = found.lastgroup
        if kind in ("name", "suffix"):
            name = found.group("name")
            parts.append(re.escape(name) + r"(?:-[a-z0-9]{6,10})?-[a-z0-9]{5}")
        else:
            assert kind is not None
            parts.append(_REPLACEMENT[kind])
        end = found.end()
    parts.append(re.escape(shown[end:]))
    return re.compile("".join(parts))


def output_problem(shown: Sequence[str], actual: str, any_order: bool = False) -> str | None:
    """None when `actual` has the shape of the `shown` lines, else what differs.

    Lines match in order, or, when the shown output has a table header or `any_order` is
    set, in any order (each shown line to its own actual line)."""
    patterns = [None if is_gap(line) else line_pattern(line) for line in shown]
    lines = [line.rstrip() for line in actual.rstrip().splitlines()]
    if _in_order(patterns, lines):
        return None
    table = any(_TABLE_HEADER.match(line) for line in shown)
    if (table or any_order) and _any_order(patterns, lines):
        return None
    missing = [
        line
        for line, pattern in zip(shown, patterns, strict=True)
        if pattern is not None and not any(pattern.fullmatch(got) for got in lines)
    ]
    if missing:
        return f"no output line has the shape of the shown {missing[0]!r}"
    return "the lines have the shown shapes, but not their number or order"


def _in_order(patterns: Sequence[re.Pattern[str] | None], lines: Sequence[str]) -> bool:
    # reachable[j]: the patterns so far can account for exactly lines[:j].
    reachable = [True] + [False] * len(lines)
    for pattern in patterns:
        step = [False] * (len(lines) + 1)
        for j, ok in enumerate(reachable):
            if not ok:
                continue
            if pattern is None:  # a gap: any number of lines
                for k in range(j, len(lines) + 1):
                    step[k] = True
                break
            if j < len(lines) and pattern.fullmatch(lines[j]):
                step[j + 1] = True
        reachable = step
    return reachable[-1]


def _any_order(patterns: Sequence[re.Pattern[str] | None], lines: Sequence[str]) -> bool:
    wanted = [p for p in patterns if p is not None]
    if len(wanted) > len(lines) or (len(wanted) < len(lines) and None not in patterns):
        return False
    # A matching of shown lines to distinct actual lines (augmenting paths; outputs are small).
    owner: dict[int, int] = {}

    def place(i: int, seen: set[int]) -> bool:
        for j, line in enumerate(lines):
            if j in seen or not wanted[i].fullmatch(line):
                continue
            seen.add(j)
            if j not in owner or place(owner[j], seen):
                owner[j] = i
                return True
        return False

    return all(place(i, set()) for i in range(len(wanted)))
