"""The kubeconfig's credentials, as the CLI and SDK read them (`kubelab.credentials`)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelab import credentials
from kubelab.credentials import Credentials


def write(path: Path, server: str, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(document))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_inline_data(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        "https://127.0.0.1:8080",
        {"certificate-authority-data": b64(b"CA")},
        {"client-certificate-data": b64(b"CERT"), "client-key-data": b64(b"KEY")},
    )
    assert credentials.from_kubeconfig(path) == Credentials(b"CA", b"CERT", b"KEY")


def test_files_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    for name, data in (("ca.crt", b"CA"), ("me.crt", b"CERT"), ("me.key", b"KEY")):
        (tmp_path / name).write_bytes(data)
    path = write(
        tmp_path / "config",
        "https://h:1",
        {"certificate-authority": "ca.crt"},
        {"client-certificate": "me.crt", "client-key": str(tmp_path / "me.key")},
    )
    assert credentials.from_kubeconfig(path) == Credentials(b"CA", b"CERT", b"KEY")


def test_plain_http_and_no_file_mean_no_credentials(tmp_path: Path) -> None:
    assert credentials.from_kubeconfig(write(tmp_path / "c", "http://h:1", {}, {})) is None
    assert credentials.from_kubeconfig(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("cluster", "user", "words"),
    [
        ({}, {}, "names no certificate authority"),
        ({"certificate-authority": "nope.crt"}, {}, "cannot read the credentials"),
        ({"certificate-authority-data": "!!"}, {}, "cannot read the credentials"),
    ],
)
def test_broken_credentials_name_the_kubeconfig(
    tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], words: str
) -> None:
    path = write(tmp_path / "config", "https://h:1", cluster, user)
    with pytest.raises(ValueError, match=words) as caught:
        credentials.from_kubeconfig(path)
    assert str(path) in str(caught.value)


def test_kubeconfig_env_first_then_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBELAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert credentials.kubeconfig_path() == tmp_path / "home" / "kubeconfig"
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert credentials.kubeconfig_path() == tmp_path / "a"
