"""A pod end to end on the ``containerd`` runtime: `raykube up --runtime containerd`, then kubectl 1.33.

Root only, with Debian's containerd, runc and CNI plugins (docs/containerd.md); skips with the reason
otherwise. The cluster lives in a fresh data dir and its own ``RAYKUBE_NAMESPACE``, joins the machine's
Ray if one runs (never stopping it) and is taken down with `raykube down --purge`, after which no
process started from that data dir (containerd, its shims, the pod's processes) may remain.

Run it alone on shared machines:
``flock /tmp/raykube-heavy.lock pytest tests/integration/test_containerd_e2e.py``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.runtimes.containerd import DEFAULT_POD_CIDR, missing_prerequisites
from tests.capabilities import require

pytestmark = pytest.mark.integration

KUBECTL = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
RAYKUBE = [sys.executable, "-m", "cluster.cli"]
REPO = Path(__file__).resolve().parents[2]
POD = """
apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  containers:
  - name: hello
    image: busybox
    command: ["sh", "-c", "echo hello from containerd; sleep 3600"]
"""


def _require_prerequisites() -> None:
    """Fail (or skip, if opted out via RAYKUBE_ALLOW_MISSING) without containerd or kubectl."""
    problems = missing_prerequisites()
    require("containerd", f"containerd end to end needs: {'; '.join(problems)}" if problems else None)
    require("kubectl", None if KUBECTL.exists() else f"kubectl 1.33 missing at {KUBECTL}")


def processes_mentioning(text: str) -> list[str]:
    """``pid: cmdline`` of every process whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = (
                Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry}: {cmdline.strip()}")
    return found


class Cluster:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.kubeconfig = data_dir / "kubeconfig"
        self.env = dict(
            os.environ,
            RAYKUBE_NAMESPACE=f"containerd-e2e-{secrets.token_hex(4)}",
            RAY_USAGE_STATS_ENABLED="0",
            COLUMNS="200",
        )
        self.env.pop("RAYKUBE_DATA_DIR", None)

    def cli(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*RAYKUBE, *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=timeout,
            check=False,
        )

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 150
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc


@pytest.fixture
def containerd_cluster() -> Iterator[Cluster]:
    _require_prerequisites()
    # A short path: containerd's sockets live under the data dir (unix socket paths max 108 bytes).
    data_dir = Path(tempfile.mkdtemp(prefix="rk-ctd-e2e-", dir="/tmp"))
    cluster = Cluster(data_dir)
    try:
        up = cluster.cli("up", "--runtime", "containerd", "--port", "0", timeout=300)
        assert up.returncode == 0 and cluster.kubeconfig.exists(), f"raykube up:\n{up.stdout}\n{up.stderr}"
        yield cluster
    finally:
        down = cluster.cli("down", "--purge", timeout=180)
        left = processes_mentioning(str(data_dir))
        shutil.rmtree(data_dir, ignore_errors=True)
        assert down.returncode == 0, f"raykube down:\n{down.stdout}\n{down.stderr}"
        assert not left, "processes of ours survived raykube down --purge:\n" + "\n".join(left)


def test_busybox_pod_runs_logs_and_is_deleted_on_containerd(containerd_cluster: Cluster) -> None:
    k = containerd_cluster
    (node,) = json.loads(k.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    runtime_version = node["status"]["nodeInfo"]["containerRuntimeVersion"]
    assert runtime_version.startswith("containerd://"), runtime_version

    ns = f"ctd-{secrets.token_hex(3)}"
    k.kubectl("create", "namespace", ns)
    k.kubectl("-n", ns, "apply", "-f", "-", input=POD)
    k.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/hello", "--timeout=120s")
    pod = json.loads(k.kubectl("-n", ns, "get", "pod", "hello", "-o", "json").stdout)
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"] == node["metadata"]["name"]
    pod_ip = ipaddress.ip_address(pod["status"]["podIP"])
    # containerd reaches the node's network plugin (bridge, the default as root) through the
    # raykube-cni shim: the address comes from the node's podCIDR, not containerd's own CNI range.
    pod_cidr = ipaddress.ip_network(node["spec"]["podCIDR"])
    assert pod_ip in pod_cidr, f"{pod_ip} not from the node's podCIDR {pod_cidr}"
    assert pod_ip not in ipaddress.ip_network(DEFAULT_POD_CIDR)
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"] and "running" in status["state"]
    assert status["containerID"].startswith("containerd://")

    assert k.kubectl("-n", ns, "logs", "hello").stdout == "hello from containerd\n"

    k.kubectl("-n", ns, "delete", "pod", "hello", "--grace-period=1", "--timeout=90s")
    gone = k.kubectl("-n", ns, "get", "pod", "hello", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stdout + gone.stderr
