"""CLI argument handling and error wording: everything decided before (or without) a server."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import cast

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf.message import Message

from kubelab.cli.common import Settings, Target, parse_targets, resolve_kind
from kubelab.cli.errors import CliError, from_api_error
from kubelab.cli.label import (
    LabelChanges,
    label_one,
    outcome,
    parse_label_changes,
    relabel,
    split_args,
)
from kubelab.cli.main import cli
from kubelab.client import ApiError, Client
from kubelab.core import kinds
from kubelab.v1 import objects_pb2

SERVER = "127.0.0.1:6443"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # Never the user's ~/.kubelab, never a real server.
    monkeypatch.setenv("KUBELAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KUBELAB_SERVER", f"127.0.0.1:{closed_port()}")
    return CliRunner()


# ---------------------------------------------------------------- naming targets


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["svc"], [(kinds.SERVICES, ())], id="kind-only"),
        pytest.param(["svc", "shop", "cart"], [(kinds.SERVICES, ("shop", "cart"))], id="names"),
        pytest.param(["Service", "shop"], [(kinds.SERVICES, ("shop",))], id="kind-spelling"),
        pytest.param(
            ["svc,po"], [(kinds.SERVICES, ()), (kinds.PODS, ())], id="comma-separated-kinds"
        ),
        pytest.param(["svc,services"], [(kinds.SERVICES, ())], id="same-kind-twice-merged"),
        pytest.param(
            ["svc/shop", "pod/web-1", "service/cart"],
            [(kinds.SERVICES, ("shop", "cart")), (kinds.PODS, ("web-1",))],
            id="slash-form-merged-by-kind",
        ),
        pytest.param(
            ["deployment.apps/web", "endpointslice.discovery.k8s.io/shop-x"],
            [(kinds.DEPLOYMENTS, ("web",)), (kinds.ENDPOINTSLICES, ("shop-x",))],
            id="qualified-kinds-from-o-name",
        ),
    ],
)
def test_parse_targets(
    args: list[str], expected: list[tuple[kinds.KindInfo, tuple[str, ...]]]
) -> None:
    assert parse_targets(args, verb="get") == [Target(i, n) for i, n in expected]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "you must specify the type of resource to get", id="nothing"),
        pytest.param(["svc", "svc/shop"], "no need to specify a resource type", id="mixed-forms"),
        pytest.param(["svc/shop", "cart"], "no need to specify a resource type", id="mixed-late"),
        pytest.param(["svc/"], "must have a name", id="slash-without-name"),
        pytest.param(["gadgets"], 'doesn\'t have a resource type "gadgets"', id="unknown"),
        pytest.param(["deployment.core"], 'resource type "deployment.core"', id="wrong-group"),
        pytest.param([","], "doesn't have a resource type", id="only-a-comma"),
    ],
)
def test_parse_targets_errors(args: list[str], message: str) -> None:
    with pytest.raises(CliError, match=message):
        parse_targets(args, verb="get")


def test_resolve_kind_accepts_kubectl_spellings() -> None:
    assert resolve_kind("deploy") is kinds.DEPLOYMENTS
    assert resolve_kind("deployments.apps") is kinds.DEPLOYMENTS
    assert resolve_kind("eps") is kinds.ENDPOINTSLICES


def test_settings_namespace_rules() -> None:
    assert Settings().namespace_for(kinds.SERVICES) == "default"
    assert Settings(namespace="shop").namespace_for(kinds.SERVICES) == "shop"
    assert Settings(namespace="shop").namespace_for(kinds.NODES) == ""


# ---------------------------------------------------------------- label arguments


@pytest.mark.parametrize(
    ("args", "resources", "changes"),
    [
        pytest.param(["svc", "shop", "env=prod"], ["svc", "shop"], ["env=prod"], id="set"),
        pytest.param(["svc/shop", "env-", "a=b"], ["svc/shop"], ["env-", "a=b"], id="remove"),
        pytest.param(
            ["svc", "shop", "example.com/team=web"],
            ["svc", "shop"],
            ["example.com/team=web"],
            id="prefixed-key",
        ),
        pytest.param(["svc", "a=b"], ["svc"], ["a=b"], id="no-names"),
    ],
)
def test_split_label_args(args: list[str], resources: list[str], changes: list[str]) -> None:
    assert split_args(args) == (resources, changes)


def test_names_after_labels_are_refused() -> None:
    with pytest.raises(CliError, match="invalid label spec: cart"):
        split_args(["svc", "shop", "env=prod", "cart"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["env=prod"], LabelChanges({"env": "prod"}, ()), id="set"),
        pytest.param(["env="], LabelChanges({"env": ""}, ()), id="empty-value"),
        pytest.param(["env-", "a=b"], LabelChanges({"a": "b"}, ("env",)), id="mixed"),
        pytest.param(["a=1", "a=1"], LabelChanges({"a": "1"}, ()), id="same-twice"),
    ],
)
def test_parse_label_changes(args: list[str], expected: LabelChanges) -> None:
    assert parse_label_changes(args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "at least one label update is required", id="none"),
        pytest.param(["bad key=x"], "invalid label spec: bad key=x", id="bad-key"),
        pytest.param(["env=no way"], "invalid label spec: env=no way", id="bad-value"),
        pytest.param(["a=1", "a=2"], "given twice", id="conflicting"),
        pytest.param(["a=1", "a-"], "can not both modify and remove", id="set-and-remove"),
    ],
)
def test_parse_label_changes_errors(args: list[str], message: str) -> None:
    with pytest.raises(CliError, match=message):
        parse_label_changes(args)


def test_relabel_needs_overwrite_for_a_different_value() -> None:
    changes = LabelChanges({"env": "dev"}, ())
    with pytest.raises(CliError) as caught:
        relabel({"env": "prod"}, changes, overwrite=False)
    assert caught.value.message == (
        "error: 'env' already has a value (prod), and --overwrite is false"
    )
    assert relabel({"env": "prod"}, changes, overwrite=True) == ({"env": "dev"}, [])


def test_relabel_same_value_and_missing_removal() -> None:
    labels, warnings = relabel({"env": "prod"}, LabelChanges({"env": "prod"}, ("gone",)), False)
    assert labels == {"env": "prod"}
    assert warnings == ['label "gone" not found.']


@pytest.mark.parametrize(
    ("changes", "changed", "word"),
    [
        pytest.param(LabelChanges({"a": "b"}, ()), True, "labeled", id="labeled"),
        pytest.param(LabelChanges({}, ("a",)), True, "unlabeled", id="unlabeled"),
        pytest.param(LabelChanges({"a": "b"}, ("c",)), True, "labeled", id="both"),
        pytest.param(LabelChanges({"a": "b"}, ()), False, "not labeled", id="unchanged"),
    ],
)
def test_label_outcome(changes: LabelChanges, changed: bool, word: str) -> None:
    assert outcome(changes, changed) == word


# ---------------------------------------------------------------- API error wording


@pytest.mark.parametrize(
    ("code", "message", "context", "expected"),
    [
        pytest.param(
            grpc.StatusCode.NOT_FOUND,
            'services "x" not found',
            {},
            'Error from server (NotFound): services "x" not found',
            id="not-found-server-text",
        ),
        pytest.param(
            grpc.StatusCode.NOT_FOUND,
            "no such key",
            {"resource": "services", "name": "x"},
            'Error from server (NotFound): services "x" not found',
            id="not-found-known-object",
        ),
        pytest.param(
            grpc.StatusCode.INVALID_ARGUMENT,
            'Service "shop" is invalid: spec.ports[0].port: Required value',
            {"kind": "Service", "name": "shop"},
            'The Service "shop" is invalid: spec.ports[0].port: Required value',
            id="invalid-server-prefix",
        ),
        pytest.param(
            grpc.StatusCode.INVALID_ARGUMENT,
            "spec.type: Unsupported value",
            {"kind": "Service", "name": "shop"},
            'The Service "shop" is invalid: spec.type: Unsupported value',
            id="invalid-bare-field-error",
        ),
        pytest.param(
            grpc.StatusCode.ALREADY_EXISTS,
            'services "shop" already exists',
            {},
            'Error from server (AlreadyExists): services "shop" already exists',
            id="already-exists",
        ),
        pytest.param(
            grpc.StatusCode.ABORTED,
            "the object has been modified",
            {},
            "Error from server (Conflict): the object has been modified",
            id="conflict",
        ),
        pytest.param(
            grpc.StatusCode.UNAVAILABLE,
            "storage is unavailable: etcd at 127.0.0.1:2379 is unavailable: failed to connect "
            "to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2379: Failed to connect to "
            "remote host: Connection refused",
            {},
            "error: the cluster's store (etcd) is unavailable: the apiserver at 127.0.0.1:6443 "
            "answers but cannot reach it (etcd at 127.0.0.1:2379 is unavailable: failed to "
            "connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2379: Failed to "
            "connect to remote host: Connection refused)",
            id="etcd-down-not-the-apiserver",
        ),
        pytest.param(
            grpc.StatusCode.UNAVAILABLE,
            "etcd is unavailable",
            {},
            "Error from server (ServiceUnavailable): etcd is unavailable",
            id="store-down",
        ),
        pytest.param(
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:6443: "
            "Failed to connect to remote host: Connection refused",
            {},
            "error: cannot reach the apiserver at 127.0.0.1:6443: the connection was refused - "
            "did you specify the right host or port?",
            id="refused",
        ),
        pytest.param(
            grpc.StatusCode.UNAVAILABLE,
            "errors resolving nohost:6443: Domain name not found",
            {},
            "error: cannot reach the apiserver at 127.0.0.1:6443: "
            "errors resolving nohost:6443: Domain name not found",
            id="unresolvable",
        ),
        pytest.param(
            grpc.StatusCode.INTERNAL,
            "boom",
            {},
            "Error from server (InternalError): boom",
            id="internal",
        ),
    ],
)
def test_api_error_wording(
    code: grpc.StatusCode, message: str, context: dict[str, str], expected: str
) -> None:
    assert from_api_error(ApiError(code, message), SERVER, **context).message == expected


def test_refused_connection_hints_at_kubelab_up() -> None:
    error = from_api_error(
        ApiError(grpc.StatusCode.UNAVAILABLE, "failed to connect: Connection refused"), SERVER
    )
    assert error.hint is not None and "kubelab up" in error.hint


# ---------------------------------------------------------------- whole commands, no server


def test_unreachable_server_is_one_clear_message(runner: CliRunner) -> None:
    port = closed_port()
    result = runner.invoke(cli, ["--server", f"127.0.0.1:{port}", "get", "svc"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"error: cannot reach the apiserver at 127.0.0.1:{port}: the connection was refused - "
        "did you specify the right host or port?"
    )
    assert "kubelab up" in result.stderr
    assert "Traceback" not in result.output


def test_server_option_after_the_verb_wins(runner: CliRunner) -> None:
    port = closed_port()
    result = runner.invoke(
        cli, ["--server", "127.0.0.1:1", "get", "svc", "--server", f"127.0.0.1:{port}"]
    )
    assert f"the apiserver at 127.0.0.1:{port}: the connection was refused" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["get", "gadgets"],
            'the server doesn\'t have a resource type "gadgets"',
            id="unknown-kind",
        ),
        pytest.param(
            ["get", "svc", "-l", "env in (prod"], "error: invalid selector", id="bad-selector"
        ),
        pytest.param(
            ["get", "svc", "shop", "-l", "a=b"], "name cannot be provided", id="name-and-selector"
        ),
        pytest.param(
            ["get", "svc", "shop", "-A"], "across all namespaces", id="name-and-all-namespaces"
        ),
        pytest.param(["get", "svc,po", "-w"], "watch is only supported", id="watch-two-kinds"),
        pytest.param(["delete", "svc"], "no name was specified", id="delete-without-names"),
        pytest.param(["label", "svc", "shop"], "at least one label update", id="label-nothing"),
        pytest.param(["apply"], "must specify -f", id="apply-without-files"),
        pytest.param(
            ["apply", "-f", "/nonexistent/x.yaml"],
            "error: /nonexistent/x.yaml",
            id="apply-missing-file",
        ),
    ],
)
def test_user_errors_exit_1_without_traceback(
    runner: CliRunner, args: list[str], message: str
) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_bad_output_format_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["get", "svc", "-o", "xml"])
    assert result.exit_code == 2
    assert "Invalid value for '-o'" in result.stderr


def test_apply_refuses_a_namespace_that_contradicts_n(runner: CliRunner, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: shop, namespace: prod}\n"
        "spec: {ports: [{port: 80}]}\n"
    )
    result = runner.invoke(cli, ["apply", "-n", "dev", "-f", str(manifest)])
    assert result.exit_code == 1
    assert 'the namespace from the provided object "prod" does not match the namespace "dev"' in (
        result.stderr
    )


def test_apply_reports_a_broken_manifest_before_sending(runner: CliRunner, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text("apiVersion: v1\nkind: Gadget\nmetadata: {name: x}\n")
    result = runner.invoke(cli, ["apply", "-f", str(manifest)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "Gadget" in result.stderr and "refused" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--service-cidr", "10.0.0.0/33"], "invalid --service-cidr", id="cidr"),
        pytest.param(["--node-port-range", "3-2"], "invalid --node-port-range", id="range"),
        pytest.param(["--api-port", "70000"], "Invalid value for '--api-port'", id="port"),
        pytest.param(["--lb-pool", "127.200.0.0/33"], "invalid --lb-pool", id="lb-pool"),
        pytest.param(
            ["--lb-pool", "192.168.50.0/24"], "LoadBalancer IPs on loopback", id="lb-pool-off-lo"
        ),
    ],
)
def test_up_rejects_bad_settings_before_starting_anything(
    runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(cli, ["up", *args])
    assert result.exit_code != 0
    assert message in result.stderr
    assert not (tmp_path / "home" / "cluster.json").exists()


def test_status_without_a_cluster(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["status"])
    assert result.exit_code == 1
    assert "No kubelab cluster is running" in result.stderr


def test_down_without_a_cluster_is_harmless(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["down"])
    assert result.exit_code == 0
    assert "No kubelab cluster is running" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["-n", "dev", "apply"], id="namespace-before-the-verb"),
        pytest.param(["-n", "other", "apply", "-n", "dev"], id="after-the-verb-wins"),
    ],
)
def test_namespace_option_on_group_and_verb(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: prod}\n")
    result = runner.invoke(cli, [*args, "-f", str(manifest)])
    assert 'does not match the namespace "dev"' in result.stderr


def test_a_bug_is_one_line_not_a_traceback(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("kubelab.cli.get.parse_targets", broken)
    monkeypatch.delenv("KUBELAB_DEBUG", raising=False)
    result = runner.invoke(cli, ["get", "svc"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "error: unexpected RuntimeError: boom"
    assert "KUBELAB_DEBUG=1" in result.stderr


class RacingClient:
    """get/update like the SDK, with a writer that races the first update."""

    target = SERVER

    def __init__(self, racer_labels: dict[str, str]) -> None:
        self.stored = objects_pb2.Service()
        self.stored.metadata.name = "shop"
        self.stored.metadata.resource_version = "1"
        self.racer_labels = racer_labels
        self.updates = 0

    async def get(self, kind: str, name: str, namespace: str = "default") -> Message:
        copy = objects_pb2.Service()
        copy.CopyFrom(self.stored)
        return copy

    async def update(self, obj: Message) -> Message:
        assert isinstance(obj, objects_pb2.Service)
        self.updates += 1
        if self.updates == 1:  # someone else wrote first
            self.stored.metadata.labels.update(self.racer_labels)
            self.stored.metadata.resource_version = "2"
        if obj.metadata.resource_version != self.stored.metadata.resource_version:
            raise ApiError(grpc.StatusCode.ABORTED, "the object has been modified")
        self.stored.CopyFrom(obj)
        return obj


async def test_label_retries_a_lost_compare_and_swap_from_a_fresh_read() -> None:
    client = RacingClient({"team": "web"})
    result = await label_one(
        cast(Client, client),
        Target(kinds.SERVICES, ("shop",)),
        "default",
        "shop",
        LabelChanges({"env": "prod"}, ()),
        overwrite=False,
    )
    assert result == "labeled"
    assert dict(client.stored.metadata.labels) == {"team": "web", "env": "prod"}
    assert client.updates == 2


async def test_label_rechecks_overwrite_after_a_lost_race() -> None:
    client = RacingClient({"env": "dev"})
    with pytest.raises(CliError, match="'env' already has a value \\(dev\\)"):
        await label_one(
            cast(Client, client),
            Target(kinds.SERVICES, ("shop",)),
            "default",
            "shop",
            LabelChanges({"env": "prod"}, ()),
            overwrite=False,
        )
    assert dict(client.stored.metadata.labels) == {"env": "dev"}
