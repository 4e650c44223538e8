"""The containerd plugin's pure parts: config.toml, the CNI conflist, readiness parsing, backoff,
and the typed refusal when the machine cannot run containerd. No root, no containerd needed."""

from __future__ import annotations

import asyncio
import os
import tomllib
from typing import Any

import pytest

from nodeagent.images import PAUSE_IMAGE
from nodeagent.runtimes.containerd import (
    Backoff,
    ContainerdPaths,
    ContainerdRuntime,
    ContainerdUnavailable,
    NetworkSpec,
)
from nodeagent.runtimes.containerd.config import render_config, render_conflist, render_shim_conflist
from nodeagent.runtimes.containerd.supervisor import cri_plugin_ok, write_shim_bin_dir

CRI = "io.containerd.grpc.v1.cri"


def _config(**kw: Any) -> dict[str, Any]:
    return tomllib.loads(render_config(ContainerdPaths("/r o/ot"), **kw))


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        pytest.param(("version",), 2, id="version-2"),
        pytest.param(("root",), "/r o/ot/root", id="root"),
        pytest.param(("state",), "/r o/ot/state", id="state"),
        pytest.param(("grpc", "address"), "/r o/ot/containerd.sock", id="socket"),
        pytest.param(("plugins", "io.containerd.internal.v1.opt", "path"), "/r o/ot/opt", id="opt-path"),
        pytest.param(("plugins", CRI, "restrict_oom_score_adj"), True, id="restrict-oom"),
        pytest.param(("plugins", CRI, "sandbox_image"), PAUSE_IMAGE, id="sandbox-image"),
        pytest.param(("plugins", CRI, "cni", "bin_dir"), "/usr/lib/cni", id="cni-bin"),
        pytest.param(("plugins", CRI, "cni", "conf_dir"), "/r o/ot/cni/net.d", id="cni-conf"),
        pytest.param(("plugins", CRI, "containerd", "snapshotter"), "overlayfs", id="snapshotter"),
        pytest.param(
            ("plugins", CRI, "containerd", "runtimes", "runc", "options", "Root"),
            "/r o/ot/runc",
            id="runc-root",
        ),
        pytest.param(
            ("plugins", CRI, "containerd", "runtimes", "runc", "runtime_type"),
            "io.containerd.runc.v2",
            id="runc-v2",
        ),
    ],
)
def test_config_values(keys: tuple[str, ...], expected: Any) -> None:
    node: Any = _config()
    for k in keys:
        node = node[k]
    assert node == expected


def test_config_overrides() -> None:
    cfg = _config(sandbox_image="localhost/pause:x", snapshotter="native", runc_binary="/opt/runc")
    cri = cfg["plugins"][CRI]
    assert cri["sandbox_image"] == "localhost/pause:x"
    assert cri["containerd"]["snapshotter"] == "native"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["BinaryName"] == "/opt/runc"


def test_conflist() -> None:
    paths = ContainerdPaths("/x")
    conf = render_conflist(NetworkSpec(pod_cidr="10.1.0.0/24", bridge="br-t"), paths)
    assert conf["name"] == "raykube-br-t"
    bridge, portmap = conf["plugins"]
    assert (bridge["type"], bridge["bridge"], bridge["isGateway"]) == ("bridge", "br-t", True)
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.1.0.0/24"}]]
    assert bridge["ipam"]["dataDir"] == "/x/cni/ipam"
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}


def test_shim_conflist_names_the_plugin_socket() -> None:
    conf = render_shim_conflist(NetworkSpec(bridge="br-t"), "/run/rk/network.sock")
    assert conf == {
        "cniVersion": "1.0.0",
        "name": "raykube-br-t",
        "plugins": [
            {"type": "raykube-cni", "socket": "/run/rk/network.sock", "capabilities": {"portMappings": True}}
        ],
    }


def test_config_with_the_shim_bin_dir() -> None:
    paths = ContainerdPaths("/r o/ot")
    assert _config(cni_bin_dir=paths.cni_bin_dir)["plugins"][CRI]["cni"]["bin_dir"] == "/r o/ot/cni/bin"


def test_shim_bin_dir(tmp_path: Any) -> None:
    """The launcher runs netplugins.cni.shim with the given Python; loopback points at the reference one."""
    d = tmp_path / "bin"
    write_shim_bin_dir(str(d), python="/venv/bin/python")
    write_shim_bin_dir(str(d), python="/venv/bin/python")  # rewriting is fine (every start does it)
    shim = (d / "raykube-cni").read_text()
    assert shim.startswith("#!/venv/bin/python\n")
    assert "from netplugins.cni.shim import main" in shim
    assert os.access(d / "raykube-cni", os.X_OK)
    assert os.readlink(d / "loopback") == "/usr/lib/cni/loopback"
    assert sorted(os.listdir(d)) == ["loopback", "raykube-cni"]


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        pytest.param({"pod_cidr": "10.1.0.300/24"}, "does not appear", id="bad-cidr"),
        pytest.param({"bridge": "a-very-long-bridge-name"}, "invalid bridge", id="long-bridge"),
        pytest.param({"bridge": ""}, "invalid bridge", id="empty-bridge"),
        pytest.param({"bridge": "a/b"}, "invalid bridge", id="slash-bridge"),
    ],
)
def test_network_validation(kw: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        NetworkSpec(**kw)


@pytest.mark.parametrize(
    ("output", "ok"),
    [
        pytest.param("TYPE ID PLATFORMS STATUS\nio.containerd.grpc.v1 cri linux/amd64 ok\n", True, id="ok"),
        pytest.param("io.containerd.grpc.v1   cri    linux/amd64    error\n", False, id="error"),
        pytest.param("io.containerd.grpc.v1 containers - ok\n", False, id="absent"),
        pytest.param("", False, id="empty"),
    ],
)
def test_cri_plugin_ok(output: str, ok: bool) -> None:
    assert cri_plugin_ok(output) is ok


@pytest.mark.parametrize(
    ("failures", "delay"),
    [
        pytest.param(0, 1.0, id="first"),
        pytest.param(1, 2.0, id="doubles"),
        pytest.param(4, 16.0, id="fifth"),
        pytest.param(10, 30.0, id="capped"),
    ],
)
def test_backoff(failures: int, delay: float) -> None:
    assert Backoff(initial=1.0, cap=30.0).delay(failures) == delay


def test_start_without_root_raises_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    rt = ContainerdRuntime(str(tmp_path))
    with pytest.raises(ContainerdUnavailable, match="needs root"):
        asyncio.run(rt.start())
    assert not rt.healthy()
    assert not (tmp_path / "config.toml").exists()


def test_start_without_binaries_raises_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    rt = ContainerdRuntime(str(tmp_path), busybox=str(tmp_path / "nope"))
    with pytest.raises(ContainerdUnavailable, match="'containerd' not on PATH") as exc:
        asyncio.run(rt.start())
    assert "busybox-static" in str(exc.value)
