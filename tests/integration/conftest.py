"""Integration tests: real Ray, real actors, real processes.

They share the machine's Ray: the CLI tests run `raykube` in subprocesses (which start and stop a
local Ray head), the store tests start their own in-process Ray. They must not overlap, so they
live in modules that pytest runs one after another.

Modules marked ``own_ray`` start and stop a Ray of their own (``ray stop --force`` included), which
would take the session's `raykube up` (``raykube_cluster``) down with it; ``pytest_collection_modifyitems``
runs them before every other integration test, whatever their names, so the session cluster is
started only after the last of them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.capabilities import require

RAYKUBE = [sys.executable, "-m", "cluster.cli"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move ``own_ray`` tests ahead of the other integration tests (stable otherwise)."""
    slots = [i for i, item in enumerate(items) if item.get_closest_marker("integration")]
    ordered = sorted((items[i] for i in slots), key=lambda item: item.get_closest_marker("own_ray") is None)
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


def run_cli(
    *args: str, data_dir: Path, check: bool = True, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RAYKUBE_DATA_DIR=str(data_dir), RAY_USAGE_STATS_ENABLED="0", COLUMNS="200")
    proc = subprocess.run(
        [*RAYKUBE, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"raykube {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def ray_stop() -> None:
    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray_bin, "stop", "--force"], capture_output=True, check=False, timeout=120)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "raykube-data"


# ---------------------------------------------------------------------- real kubectl against `raykube up`

KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")
KUBECTL_VERSIONS = ("1.27", "1.30", "1.32", "1.33")
KUBECTL_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class RaykubeCluster:
    """A control plane started by `raykube up` for this test session (in its own Ray namespace)."""

    data_dir: Path
    kubeconfig: Path
    env: dict[str, str]

    @property
    def server(self) -> str:
        return str(yaml.safe_load(self.kubeconfig.read_text())["clusters"][0]["cluster"]["server"])


def kubectl_binary(version: str) -> Path:
    """The kubectl binary for ``version``; fails the test when it is not installed (unless opted out)."""
    path = KUBECTL_DIR / f"kubectl.{version}"
    require("kubectl", None if path.exists() else f"kubectl {version} is not installed at {path}")
    return path


class Kubectl:
    """Runs one kubectl version against the session's cluster, in one namespace, with a timeout."""

    def __init__(self, cluster: RaykubeCluster, version: str, namespace: str | None) -> None:
        self.cluster = cluster
        self.version = version
        self.binary = kubectl_binary(version)
        self.namespace = namespace

    def run(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = KUBECTL_TIMEOUT,
        namespaced: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.binary), "--kubeconfig", str(self.cluster.kubeconfig)]
        if namespaced and self.namespace:
            cmd += ["-n", self.namespace]
        proc = subprocess.run(
            [*cmd, *args],
            capture_output=True,
            text=True,
            input=input,
            env=dict(os.environ, **(env or {})),
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {self.version} {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def out(self, *args: str, **kw: Any) -> str:
        return self.run(*args, **kw).stdout

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.run(*args, "-o", "json", **kw).stdout)

    def fails(self, *args: str, **kw: Any) -> str:
        """Run a command that must fail; return its stderr."""
        proc = self.run(*args, check=False, **kw)
        assert proc.returncode != 0, f"kubectl {' '.join(args)} unexpectedly succeeded:\n{proc.stdout}"
        return proc.stderr

    def apply(self, manifest: str, *args: str) -> str:
        return self.out("apply", "-f", "-", *args, input=manifest)

    def with_version(self, version: str) -> Kubectl:
        return Kubectl(self.cluster, version, self.namespace)


@pytest.fixture(scope="session")
def raykube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RaykubeCluster]:
    """`raykube up` once per session, joining the machine's Ray if one runs (never stopping it)."""
    data_dir = tmp_path_factory.mktemp("raykube-kubectl") / "data"
    env = dict(
        os.environ,
        RAYKUBE_NAMESPACE=f"kubectl-tests-{secrets.token_hex(4)}",
        RAYKUBE_NODE_MONITOR_GRACE="15",  # test_node_lifecycle: NotReady within seconds, not 40
        RAY_USAGE_STATS_ENABLED="0",
        COLUMNS="200",
    )
    env.pop("RAYKUBE_DATA_DIR", None)
    cluster = RaykubeCluster(data_dir, data_dir / "kubeconfig", env)

    def cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*RAYKUBE, *args, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )

    up = cli("up", "--port", "0", timeout=300)
    try:
        if up.returncode != 0 or not cluster.kubeconfig.exists():
            raise AssertionError(f"raykube up exited {up.returncode}\n{up.stdout}\n{up.stderr}")
        yield cluster
    finally:
        cli("down", "--purge", timeout=120)


@pytest.fixture
def namespace(raykube_cluster: RaykubeCluster) -> Iterator[str]:
    """A fresh Kubernetes namespace for one test, deleted afterwards (without waiting)."""
    name = f"t-{secrets.token_hex(4)}"
    admin = Kubectl(raykube_cluster, "1.33", None)
    admin.run("create", "namespace", name)
    yield name
    admin.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kubectl(raykube_cluster: RaykubeCluster, namespace: str) -> Kubectl:
    """kubectl 1.33 bound to the test's namespace."""
    return Kubectl(raykube_cluster, "1.33", namespace)
