"""kubelab.testing.readme: the documentation's commands and the shape of their output."""

from __future__ import annotations

import pytest

from kubelab.testing.docker import REPO_ROOT
from kubelab.testing.readme import (
    Command,
    bench_commands,
    blocks,
    command_names,
    commands,
    documentation_pages,
    documented_bench_commands,
    documented_commands,
    is_gap,
    output_problem,
    readme_commands,
    strip_comment,
)

MARKDOWN = """# Title

## Quick start

```sh
make up      # starts it
make test
```

Some prose with `kubelab get svc` inline: not a block.

## Walk

```console
$ kubelab get svc
NAME   TYPE
shop   NodePort

$ kubelab apply -f - <<'EOF'
kind: Service
metadata: {name: bad}
EOF
error: STDIN: document 1: Service "bad" is invalid
$ curl -s http://127.10.0.1:30080/ \\
    --max-time 2
```

```yaml
kind: Service
```

```python
print("hi")
```
"""


def test_blocks_have_language_line_and_section() -> None:
    found = blocks(MARKDOWN)
    assert [(b.lang, b.line, b.section) for b in found] == [
        ("sh", 6, "Quick start"),
        ("console", 15, "Walk"),
        ("yaml", 29, "Walk"),
        ("python", 33, "Walk"),
    ]
    assert found[0].lines == ("make up      # starts it", "make test")


def test_commands_of_every_kind_of_block() -> None:
    found = readme_commands(MARKDOWN)
    assert [(c.line, c.lang, c.head) for c in found] == [
        (6, "sh", "make up"),
        (7, "sh", "make test"),
        (15, "console", "kubelab get svc"),
        (19, "console", "kubelab apply -f - <<'EOF'"),
        (24, "console", "curl -s http://127.10.0.1:30080/ --max-time 2"),
        (33, "python", 'print("hi")'),
    ]
    get, apply, curl = found[2:5]
    assert get.expected == ("NAME   TYPE", "shop   NodePort")  # the blank line dropped
    assert apply.text == "kubelab apply -f - <<'EOF'\nkind: Service\nmetadata: {name: bad}\nEOF"
    assert apply.expected == ('error: STDIN: document 1: Service "bad" is invalid',)
    assert curl.expected == ()
    assert found[-1].text == 'print("hi")\n'


def _command(head: str, expected: tuple[str, ...] = (), lang: str = "sh") -> Command:
    return Command(1, head, expected, lang, "")


@pytest.mark.parametrize(
    ("text", "lang", "kind", "watches", "changes"),
    [
        ("make up", "sh", "embedded", False, True),
        ("make test", "sh", "suite", False, True),
        ("make lab", "console", "lab", False, True),
        (
            "compose/compose.sh -f compose/lab.yaml -p kubelab exec client kubelab get nodes",
            "console",
            "lab",
            False,
            False,
        ),
        (
            "KUBECONFIG=compose/lab.kubeconfig kubectl get nodes",
            "console",
            "lab",
            False,
            False,
        ),
        ("curl -X POST http://<podIP>:8080/healthz/fail", "sh", "placeholder", False, True),
        ("kill -9 <a node agent's pid from kubelab status>", "sh", "placeholder", False, True),
        ("kubelab apply -f - <<'EOF'\nkind: Service\nEOF", "console", "embedded", False, True),
        ("kubelab get pods -o wide -w     # ...its pods go", "sh", "embedded", True, False),
        ("kubelab get svc -w", "sh", "embedded", True, False),
        ("kubelab logs shop-dev           # -f follows", "sh", "embedded", False, False),
        ("kubelab logs -f shop-dev", "sh", "embedded", True, False),
        ("kubelab label svc shop tier=web", "sh", "embedded", False, True),
        ("kubelab describe svc shop | grep -A2 Conditions", "sh", "embedded", False, False),
        ("sed 's|a|b|' examples/shop.yaml | kubelab apply -f -", "sh", "embedded", False, True),
        ("async for e in api.watch('svc'):\n    print(e)", "python", "python", True, True),
    ],
)
def test_kinds(text: str, lang: str, kind: str, watches: bool, changes: bool) -> None:
    command = _command(text, lang=lang)
    assert (command.kind, command.watches, command.changes_state) == (kind, watches, changes)


@pytest.mark.parametrize(
    ("expected", "fails"),
    [
        ((), False),
        (("service/shop created",), False),
        (("error: nope.default.svc.cluster.local.: no such name (NXDOMAIN)",), True),
        (('The Service "bad" is invalid: spec.ports[0].nodePort: Invalid value',), True),
        (('Error from server (Forbidden): services "shop" is forbidden: User "x"',), True),
        (("shop-lb   LoadBalancer   <pending>",), False),
    ],
)
def test_an_error_shown_means_it_must_fail(expected: tuple[str, ...], fails: bool) -> None:
    assert _command("kubelab x", expected).expects_failure is fails


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("kubelab get svc", ("kubelab",)),
        ("curl -s http://$(kubelab dns shop)/", ("curl", "kubelab")),
        (
            "for node in 1 2 3; do for i in 1 2; do curl -s http://127.10.0.$node:30080/"
            ' | grep -o \'"pod":"[^"]*"\'; done; done',
            ("curl", "grep"),
        ),
        ("sed 's|image: a$|image: b|' x.yaml | kubelab apply -f -", ("sed", "kubelab")),
        ("kubelab get svc -l 'env=prod,app in (shop,cart),!canary'", ("kubelab",)),
        ("kubelab apply -f examples/shop-lb.yaml && kubelab get svc shop-lb", ("kubelab",)),
        (
            "cat a b | compose/compose.sh exec -T client kubelab apply -f -",
            ("cat", "compose/compose.sh"),
        ),
        ("kubelab apply -f - <<'EOF'", ("kubelab",)),
        ("A=1 grpcurl -plaintext 127.0.0.1:6443 list > out.txt", ("grpcurl",)),
        ("kill -9 <a node agent's pid>", ("kill",)),  # unbalanced quote: first word
    ],
)
def test_command_names(line: str, names: tuple[str, ...]) -> None:
    assert command_names(line) == names


@pytest.mark.parametrize(
    ("line", "stripped"),
    [
        ("make up      # starts it", "make up"),
        ("kubelab get svc", "kubelab get svc"),
        ("grep -c '#' file   # count", "grep -c '#' file"),
        ('echo "a # b"', 'echo "a # b"'),
        ("curl http://x/#frag", "curl http://x/#frag"),
    ],
)
def test_strip_comment(line: str, stripped: str) -> None:
    assert strip_comment(line) == stripped


@pytest.mark.parametrize(
    ("line", "gap"),
    [
        ("...", True),
        ("  ...", True),
        ("...      # the same five", True),
        ("...x", False),
        ("a ...", False),
    ],
)
def test_gaps(line: str, gap: bool) -> None:
    assert is_gap(line) is gap


GET_PODS = """\
NAME                    READY   STATUS    RESTARTS   AGE   IP            NODE
shop-dev                1/1     Running   0          5s    127.244.1.2   node-1
shop-lgfsvc68n9-96rc7   1/1     Running   0          5s    127.244.3.2   node-3"""


@pytest.mark.parametrize(
    ("actual", "any_order", "matches"),
    [
        # values vary: ages, IPs, counts, the generated names' suffixes, column padding
        (
            "NAME                    READY   STATUS    RESTARTS   AGE    IP             NODE\n"
            "shop-dev                1/1     Running   2          1m5s   127.244.2.12   node-2\n"
            "shop-8wdzhbbfjm-c5697   1/1     Running   0          61s    127.244.1.3    node-1\n",
            False,
            True,
        ),
        # table rows sorted by name come in another order when the suffixes differ
        (
            "NAME   READY   STATUS    RESTARTS   AGE   IP   NODE\n"
            "shop-8wdzhbbfjm-c5697   1/1   Running   0   5s   127.244.1.3   node-1\n"
            "shop-dev   1/1   Running   0   5s   127.244.1.2   node-1\n",
            False,
            True,
        ),
        # a column more or less is another shape
        (
            "NAME   READY   STATUS    RESTARTS   AGE   IP   NODE   NOMINATED\n"
            "shop-dev   1/1   Running   0   5s   127.244.1.2   node-1\n"
            "shop-8wdzhbbfjm-c5697   1/1   Running   0   5s   127.244.1.3   node-1\n",
            False,
            False,
        ),
        # a different name, or a word where the README has one
        (
            "NAME   READY   STATUS    RESTARTS   AGE   IP   NODE\n"
            "shop-prod   1/1   Running   0   5s   127.244.1.2   node-1\n"
            "shop-8wdzhbbfjm-c5697   1/1   Running   0   5s   127.244.1.3   node-1\n",
            False,
            False,
        ),
        (
            "NAME   READY   STATUS    RESTARTS   AGE   IP   NODE\n"
            "shop-dev   0/1   Pending   0   5s   127.244.1.2   node-1\n"
            "shop-8wdzhbbfjm-c5697   1/1   Running   0   5s   127.244.1.3   node-1\n",
            False,
            False,
        ),
        # a row too many or too few
        (
            "NAME   READY   STATUS    RESTARTS   AGE   IP   NODE\n"
            "shop-dev   1/1   Running   0   5s   127.244.1.2   node-1\n",
            False,
            False,
        ),
        ("", False, False),
    ],
)
def test_table_shapes(actual: str, any_order: bool, matches: bool) -> None:
    assert (output_problem(GET_PODS.splitlines(), actual, any_order) is None) is matches


@pytest.mark.parametrize(
    ("shown", "actual", "any_order", "matches"),
    [
        # `...` stands for any number of lines, none included
        (
            ("apiVersion: v1", "  ...", "spec:"),
            "apiVersion: v1\n  uid: x\n  a: b\nspec:\n",
            False,
            True,
        ),
        (("apiVersion: v1", "  ...", "spec:"), "apiVersion: v1\nspec:\n", False, True),
        (("kind: Service", "  ...", "spec:"), "kind: Pod\nspec:\n", False, False),
        # without a gap, a line more is another shape
        (("a: 1",), "a: 2\nb: 3\n", False, False),
        # lines in order, unless told otherwise
        (
            ('"pod":"shop-8wdzhbbfjm-f7bbq"', '"pod":"shop-usd"', "..."),
            '"pod":"shop-usd"\n"pod":"shop-8wdzhbbfjm-x2x2x"\n"pod":"shop-8wdzhbbfjm-x2x2x"\n',
            False,
            False,
        ),
        (
            ('"pod":"shop-8wdzhbbfjm-f7bbq"', '"pod":"shop-usd"', "..."),
            '"pod":"shop-usd"\n"pod":"shop-8wdzhbbfjm-x2x2x"\n"pod":"shop-8wdzhbbfjm-x2x2x"\n',
            True,
            True,
        ),
        (
            ('"pod":"shop-8wdzhbbfjm-f7bbq"', '"pod":"shop-usd"', "..."),
            '"pod":"shop-dev"\n"pod":"shop-8wdzhbbfjm-x2x2x"\n',
            True,
            False,
        ),
        # lists of addresses are as long as the cluster makes them
        (
            ("Endpoints:                127.244.3.3:8080,127.244.1.3:8080",),
            "Endpoints:   127.244.1.2:8080,127.244.1.3:8080,127.244.2.2:8080\n",
            False,
            True,
        ),
        # an address appears a few milliseconds after <pending>; <none> stays <none>
        (
            ("shop-lb   LoadBalancer   127.96.1.2   <pending>   8080:31727/TCP   0s",),
            "shop-lb   LoadBalancer   127.96.1.9   127.200.0.1   8080:30001/TCP   2s\n",
            False,
            True,
        ),
        (
            ("shop   NodePort   127.96.1.2   <none>   80:30080/TCP   0s",),
            "shop   NodePort   127.96.1.2   127.200.0.1   80:30080/TCP   0s\n",
            False,
            False,
        ),
        # uids, quoted numbers
        (
            ("  uid: cbb45362-7e5d-469e-8cab-47a445883d79", "  resourceVersion: '2'"),
            "  uid: 297fd9f4-e508-4528-9b5e-acd0c7a7102b\n  resourceVersion: '119'\n",
            False,
            True,
        ),
        # indentation is YAML's structure: kept
        (("  type: NodePort",), "type: NodePort\n", False, False),
        # trailing blanks and a final newline do not count
        (("service/shop unchanged",), "service/shop unchanged   \n\n", False, True),
    ],
)
def test_shapes(shown: tuple[str, ...], actual: str, any_order: bool, matches: bool) -> None:
    assert (output_problem(shown, actual, any_order) is None) is matches


def test_a_mismatch_names_the_readme_line() -> None:
    problem = output_problem(("service/shop created",), "service/shop unchanged\n")
    assert problem is not None and "'service/shop created'" in problem


def _read(page: str) -> str:
    return (REPO_ROOT / page).read_text()


README = (REPO_ROOT / "README.md").read_text()
DOCUMENTED = documented_commands(README, _read)


def test_the_documentation_has_commands_of_each_kind() -> None:
    # The integration and lab tests run these; an edit that makes the parser lose them
    # (a renamed fence, a changed prompt, a page no longer linked) must fail here, not pass
    # quietly there. 62 commands were tested when the README held them all.
    kinds = {c.kind for c in DOCUMENTED}
    assert {"embedded", "lab", "suite", "python"} <= kinds, kinds
    assert len(DOCUMENTED) >= 62
    assert sum(c.kind == "embedded" for c in DOCUMENTED) >= 50
    assert sum(bool(c.expected) for c in DOCUMENTED) >= 27
    assert DOCUMENTED[0].where == "README.md:" + str(DOCUMENTED[0].line)
    assert DOCUMENTED[0].head == "make up"  # the first command: it starts the cluster
    assert commands(blocks("```text\n$ not run\n```\n")[0]) == []


def test_the_lab_commands_are_found() -> None:
    # tests/lab/test_readme_lab.py runs them, but only with Docker: without it, an edit
    # that loses the lab's block (or its start, or its end) fails here.
    lab = [c for c in DOCUMENTED if c.kind == "lab"]
    heads = [c.head for c in lab]
    assert heads[:1] == ["make lab"] and len(heads) >= 8, heads
    assert {c.page for c in lab} == {"docs/lab.md"}
    assert any(h.endswith("curl -m 2 http://10.96.82.252/") for h in heads), heads


def test_every_page_in_docs_is_in_the_readmes_reading_order() -> None:
    pages = documentation_pages(README)
    on_disk = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "docs").glob("*.md"))
    assert sorted(pages) == on_disk
    assert pages[0] == "docs/walkthrough.md"  # it continues the README's walk


PAGES = {
    "README.md": """# Title

```sh
make up
```

See the [walkthrough](docs/walk.md#start) for more.

## Documentation

- [Walk](docs/walk.md): first.
- [Lab](docs/lab.md) and [walk again](docs/walk.md#end), [the web](https://example.com/x.md).

```sh
# [not a link](docs/fenced.md)
```

## Later

[Design](docs/design.md) is linked, but not from the Documentation section.
""",
    "docs/walk.md": "# Walk\n\n```console\n$ kubelab get svc\nNAME\n```\n\n"
    "Run `.venv/bin/python bench/api.py`.\n",
    "docs/lab.md": "# Lab\n\n```sh\nmake lab\n```\n\n`.venv/bin/python bench/api.py` again,"
    " `python bench/dns.py`.\n",
}


def test_documentation_pages_follow_the_documentation_section() -> None:
    assert documentation_pages(PAGES["README.md"]) == ["docs/walk.md", "docs/lab.md"]
    assert documentation_pages("# Title\n\n[Walk](docs/walk.md)\n") == []


def test_documented_commands_come_in_reading_order() -> None:
    found = documented_commands(PAGES["README.md"], PAGES.__getitem__)
    assert [(c.where, c.head) for c in found] == [
        ("README.md:4", "make up"),
        ("docs/walk.md:4", "kubelab get svc"),
        ("docs/lab.md:4", "make lab"),
    ]
    assert found[1].expected == ("NAME",)


def test_documented_bench_commands_each_once() -> None:
    assert documented_bench_commands(PAGES["README.md"], PAGES.__getitem__) == [
        ("docs/walk.md", 8, ".venv/bin/python bench/api.py"),
        ("docs/lab.md", 7, "python bench/dns.py"),
    ]


def test_bench_commands_in_prose() -> None:
    prose = (
        "Run `.venv/bin/python bench/api.py` (or `python bench/api.py`), then\n"
        "`.venv/bin/python bench/dns.py --skip-qps` and `.venv/bin/python bench/api.py` again;\n"
        "`bench/_conditions.py` is a module, `make bench` runs them all.\n"
    )
    assert bench_commands(prose) == [
        (1, ".venv/bin/python bench/api.py"),
        (1, "python bench/api.py"),
        (2, ".venv/bin/python bench/dns.py --skip-qps"),
    ]
