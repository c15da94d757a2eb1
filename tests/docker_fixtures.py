"""The `image` fixture shared by the container tiers (tests/lab, tests/chaos).

The session's first test that asks for it builds the image with compose/build-image.sh
(seconds when nothing changed, a few minutes from a clean machine); $KUBELAB_LAB_IMAGE
names an existing image to use instead, without building.

No Docker: with CI=true the tests fail (CI must have it); elsewhere they skip, saying why.
"""

from __future__ import annotations

import os

import pytest

from kubelab.testing.docker import DockerError, build_image, docker, docker_problem


def require(what: str, problem: str | None) -> None:
    """Fail (CI=true) or skip the test, saying why, when `problem` says what is missing."""
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}, and CI=true: {problem}", pytrace=False)
    pytest.skip(f"{what}: {problem}")


def require_docker(what: str) -> None:
    require(f"{what} need Docker", docker_problem())


@pytest.fixture(scope="session")
def image() -> str:
    require_docker("container tests")
    existing = os.environ.get("KUBELAB_LAB_IMAGE")
    try:
        if existing:
            docker("image", "inspect", existing)
            return existing
        return build_image()
    except DockerError as err:
        pytest.fail(str(err), pytrace=False)
