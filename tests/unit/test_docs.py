"""The documentation's references hold: every relative link in README.md and docs/*.md
resolves (anchors included), every repository path named in backticks exists, no issue
numbers in what a reader reads; and `make test-fast` is the fast tier it says it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubelab.testing.docker import REPO_ROOT
from kubelab.testing.doclinks import (
    anchors,
    brace_expansions,
    issue_numbers,
    links,
    mention_kind,
    path_mentions,
    slug,
)

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
IDS = [str(page.relative_to(REPO_ROOT)) for page in PAGES]
# The repository's top-level entries a path may start with (the virtualenv and the tools'
# caches are no part of it).
ROOTS = {
    entry.name
    for entry in REPO_ROOT.iterdir()
    if entry.name == ".ci" or not (entry.name.startswith(".") or entry.name.endswith("egg-info"))
}
# Spans shaped like paths that are none, or paths a run writes (so a fresh clone lacks
# them): and why.
NOT_IN_A_CLONE = {
    "bench/results/chaos.json": "the chaos suite writes it (tests/chaos/report.py)",
    "compose/.wheels/": "compose/build-image.sh fills it",
    "kubelab/echo": "the built-in echo image's name",
}


def _exists(path: str) -> bool:
    return any(
        any(REPO_ROOT.glob(expanded)) if "*" in expanded else (REPO_ROOT / expanded).exists()
        for expanded in brace_expansions(path.rstrip("/"))
    )


def _named_somewhere(name: str) -> bool:
    return any(
        ".venv" not in found.parts and "build" not in found.parts for found in REPO_ROOT.rglob(name)
    )


# ---- the helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("The Service", "the-service"),
        ("Chaos: `pytest -m chaos`", "chaos-pytest--m-chaos"),
        (
            "LoadBalancer: an address from the cloud-stub",
            "loadbalancer-an-address-from-the-cloud-stub",
        ),
        ("Dependencies, and why", "dependencies-and-why"),
        ("The seed's shop", "the-seeds-shop"),
        ("node_agent/proxy.py", "node_agentproxypy"),
    ],
)
def test_slug(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_anchors_skip_code_and_number_repeats() -> None:
    page = "# A\n\n## Twice\n\n```sh\n# not a heading\n```\n\n## Twice\n"
    assert anchors(page) == {"a", "twice", "twice-1"}


def test_links_are_relative_and_outside_code() -> None:
    page = (
        "See [the lab](docs/lab.md#chaos) and [Kubernetes](https://kubernetes.io/x.md),\n"
        "`[not](a.md)`, [here](#top), ![image](img/a.png 'x').\n"
        "```\n[fenced](b.md)\n```\n"
    )
    assert links(page) == [(1, "docs/lab.md#chaos"), (2, "#top"), (2, "img/a.png")]


@pytest.mark.parametrize(
    ("span", "kind"),
    [
        ("kubelab/store/batching.py", "path"),
        ("kubelab/store.py", "path"),
        ("services/*", "path"),
        ("/registry/allocations/{clusterips,nodeports}/...", None),  # an etcd key
        ("shared/DESIGN.md", "path"),  # not in the repository, but a file all the same
        ("test_dns.py", "name"),
        ("store_batching.py", "name"),
        ("kubelab.v1", None),
        ("kubernetes.io/service-name", None),  # a label key
        ("127.200.0.0/24", None),
        ("logs/supervisor.log", None),  # under $KUBELAB_HOME
        ("kubelab get svc", None),
        ("curl http://127.10.0.1:30080/", None),
        ("-o yaml", None),
    ],
)
def test_mention_kind(span: str, kind: str | None) -> None:
    assert mention_kind(span, {"kubelab", "services", "tests"}) == kind


def test_path_mentions_skip_code_blocks() -> None:
    page = "Read `kubelab/client.py` and `x.py`.\n```sh\ncat `kubelab/y.py`\n```\n"
    assert path_mentions(page, {"kubelab"}) == [
        (1, "kubelab/client.py", "path"),
        (1, "x.py", "name"),
    ]


def test_brace_expansions() -> None:
    assert brace_expansions("a/{b,c}/d") == ["a/b/d", "a/c/d"]
    assert brace_expansions("a/b") == ["a/b"]


def test_issue_numbers() -> None:
    page = "Added by issue #5 (#12); issues 3 and 4.\n`#7` in code, ## headings, &#39;\n"
    assert [found for _, found in issue_numbers(page)] == ["issue #5", "#12", "issues 3"]


# ---- the documentation -----------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for line, target in links(page.read_text()):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"line {line}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            broken.append(f"line {line}: {target} (no heading makes #{anchor})")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_named_paths_exist(page: Path) -> None:
    missing = []
    for line, span, kind in path_mentions(page.read_text(), ROOTS):
        if span in NOT_IN_A_CLONE:
            continue
        found = _exists(span) if kind == "path" else _named_somewhere(span)
        if not found:
            missing.append(f"line {line}: `{span}`")
    assert not missing, "named but not in the repository:\n" + "\n".join(missing)


def test_the_stale_store_paths_are_caught() -> None:
    # The README once named these after they had moved into the kubelab/store package.
    assert not _exists("kubelab/store.py") and not _named_somewhere("store_batching.py")
    assert _exists("kubelab/store/batching.py") and _exists("kubelab/core/validation/")


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_no_issue_numbers(page: Path) -> None:
    assert issue_numbers(page.read_text()) == []


def test_every_exception_is_still_named() -> None:
    named = {span for page in PAGES for _, span, _ in path_mentions(page.read_text(), ROOTS)}
    assert set(NOT_IN_A_CLONE) <= named, set(NOT_IN_A_CLONE) - named


# ---- the fast tier ---------------------------------------------------------------------


def _recipe(target: str) -> list[str]:
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_the_fast_tier_is_the_unit_tests_and_ruff() -> None:
    recipe = _recipe("test-fast")
    pytest_lines = [line for line in recipe if "pytest" in line]
    assert len(pytest_lines) == 1, recipe
    words = pytest_lines[0].split()
    paths = [word for word in words if word.startswith("tests")]
    assert paths == ["tests/unit"], pytest_lines
    marker = re.search(r'-m "([^"]*)"', pytest_lines[0])
    assert marker is not None, pytest_lines
    for tier in ("integration", "chaos", "lab"):
        assert f"not {tier}" in marker.group(1), marker.group(1)
    assert any("ruff check" in line for line in recipe), recipe
    assert not any("mypy" in line or "lint-imports" in line for line in recipe), recipe


SLOWER_TIER = re.compile(
    # Another tier's marker, the etcd and apiserver fixtures (tests/conftest.py), Docker.
    r"pytest\.mark\.(integration|chaos|lab)\b|^pytestmark\b"
    r"|def test_\w+\([^)]*\b(etcd|apiserver)\b|require_docker|docker_fixtures",
    re.MULTILINE,
)


def test_no_unit_test_belongs_to_a_slower_tier() -> None:
    here = Path(__file__).resolve()
    found = [
        str(path.relative_to(REPO_ROOT))
        for path in (REPO_ROOT / "tests" / "unit").glob("*.py")
        if path.resolve() != here and SLOWER_TIER.search(path.read_text())
    ]
    assert found == [], found
    assert SLOWER_TIER.search("pytestmark = pytest.mark.integration\n")
    assert SLOWER_TIER.search("def test_x(etcd: EtcdServer) -> None:")


def test_the_whole_suite_stays_whole() -> None:
    # `make test` is what CI runs (.ci/run): every tier, not the fast one.
    recipe = _recipe("test")
    assert any(line.endswith("/pytest -q") for line in recipe), recipe
    assert "make test\n" in (REPO_ROOT / ".ci" / "run").read_text()
