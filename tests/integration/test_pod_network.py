"""Pod networking end to end: real `raykube up`, real node agents, the process runtime and the node's
network plugin, checked through kubectl.

The session cluster (``raykube_cluster``) uses the default plugin: ``bridge`` as root where the CNI
reference plugins are installed (CI), else ``host``. Whichever it is, two pods on one node must show
their podIP/hostIP in ``kubectl get pods -o wide`` and one must reach the other's podIP (with the
bridge plugin: distinct addresses from the node's podCIDR; with ``host``: the node's address). Pods of
the process runtime run the host's commands (docs/cri.md), so ``busybox httpd`` serves and ``busybox
wget`` fetches (under ``timeout``: this busybox's own ``wget -T`` crashes). A private ``raykube up
--network host`` cluster checks the host-port accounting.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster.up_config import ClusterConfig
from tests.integration import support
from tests.integration.conftest import RAYKUBE, Kubectl, RaykubeCluster

wait_until = functools.partial(support.wait_until, timeout=120.0)


def pod(name: str, script: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script], **container}],
        },
    }


def running(get: Any, name: str) -> dict[str, Any] | None:
    p = get(name)
    return p if p["status"].get("phase") == "Running" and p["status"].get("podIP") else None


def wide(run_kubectl: Any) -> dict[str, list[str]]:
    """``kubectl get pods -o wide`` as {name: row}, read by its header."""
    lines = run_kubectl("get", "pods", "-o", "wide").splitlines()
    header = lines[0].split()
    return {row.split()[0]: row.split() for row in lines[1:] if row.strip()} | {"": header}


def column(rows: dict[str, list[str]], name: str, col: str) -> str:
    return rows[name][rows[""].index(col)]


def test_pods_get_ips_and_reach_each_other(
    raykube_cluster: RaykubeCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    cfg = ClusterConfig.load(raykube_cluster.data_dir)
    assert cfg is not None and cfg.network in ("bridge", "host"), cfg
    port = 20000 + secrets.randbelow(20000)
    (tmp_path / "index.html").write_text("hello from web\n")
    os.chmod(tmp_path, 0o755)
    kubectl.apply(json.dumps(pod("web", f"exec busybox httpd -f -p {port} -h {tmp_path}")))
    kubectl.apply(json.dumps(pod("client", "exec sleep 3600")))
    get = functools.partial(lambda name: dict(kubectl.json("get", "pod", name)))
    web = wait_until(lambda: running(get, "web"), "pod web running with an IP")
    client = wait_until(lambda: running(get, "client"), "pod client running with an IP")
    assert web["spec"]["nodeName"] == client["spec"]["nodeName"]  # one node in the session cluster

    rows = wide(kubectl.out)
    for p in (web, client):
        name, status = p["metadata"]["name"], p["status"]
        assert column(rows, name, "IP") == status["podIP"]
        assert status["podIPs"][0]["ip"] == status["podIP"]
        assert status["hostIP"] and status["hostIPs"][0]["ip"] == status["hostIP"]
    if cfg.network == "host":
        assert web["status"]["podIP"] == client["status"]["podIP"] == web["status"]["hostIP"]
    else:
        node = kubectl.json("get", "node", web["spec"]["nodeName"], namespaced=False)
        cidr = ipaddress.ip_network(node["spec"]["podCIDR"])
        ips = {ipaddress.ip_address(p["status"]["podIP"]) for p in (web, client)}
        assert len(ips) == 2 and all(ip in cidr for ip in ips), (ips, cidr)

    url = f"http://{web['status']['podIP']}:{port}/index.html"

    def fetch() -> str | None:
        r = kubectl.run(
            "exec", "client", "--", "timeout", "5", "busybox", "wget", "-q", "-O", "-", url, check=False
        )
        return r.stdout if r.returncode == 0 else None

    assert wait_until(fetch, f"client fetching {url}", timeout=60) == "hello from web\n"


# ---------------------------------------------------------------------- a private --network host cluster


class HostCluster:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = dict(
            os.environ,
            RAYKUBE_NAMESPACE=f"rk-hostnet-{secrets.token_hex(4)}",
            RAY_USAGE_STATS_ENABLED="0",
            COLUMNS="200",
        )
        self.env.pop("RAYKUBE_DATA_DIR", None)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*RAYKUBE, *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return support.kubectl_at(self.data_dir / "kubeconfig", *args, input=input)


@pytest.fixture
def host_cluster(tmp_path: Path) -> Iterator[HostCluster]:
    cluster = HostCluster(tmp_path / "data")
    up = cluster.cli("up", "--port", "0", "--network", "host")
    try:
        assert up.returncode == 0, f"raykube up exited {up.returncode}\n{up.stdout}\n{up.stderr}"
        yield cluster
    finally:
        down = cluster.cli("down", "--purge", timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr


def test_host_plugin_gives_the_node_ip_and_refuses_a_taken_host_port(host_cluster: HostCluster) -> None:
    c = host_cluster
    cfg = ClusterConfig.load(c.data_dir)
    assert cfg is not None and (cfg.network, cfg.network_backend) == ("host", "host-gw")
    status = c.cli("status", timeout=120)
    assert "network plugin host (node network), ready" in status.stdout, status.stdout

    port = 20000 + secrets.randbelow(20000)
    ports = [{"containerPort": port, "hostPort": port}]
    c.kubectl("apply", "-f", "-", input=json.dumps(pod("a", "exec sleep 3600", ports=ports)))

    def get(name: str) -> dict[str, Any]:
        return dict(json.loads(c.kubectl("get", "pod", name, "-o", "json")))

    a = wait_until(lambda: running(get, "a"), "pod a running")
    # The scheduler's NodePorts filter would keep b Pending; bound directly (as a static pod or a
    # pod created with spec.nodeName is), b reaches the node and the plugin must refuse its port.
    b = pod("b", "exec sleep 3600", ports=ports)
    b["spec"]["nodeName"] = a["spec"]["nodeName"]
    c.kubectl("apply", "-f", "-", input=json.dumps(b))
    assert a["status"]["podIP"] == a["status"]["hostIP"]
    rows = wide(c.kubectl)
    assert column(rows, "a", "IP") == a["status"]["hostIP"]

    want = f"hostPort {port}/TCP is already used by pod default/a"

    def refused() -> str | None:
        events = json.loads(c.kubectl("get", "events", "-o", "json"))["items"]
        for e in events:
            if e["involvedObject"]["name"] == "b" and e["reason"] == "FailedCreatePodSandBox":
                return str(e["message"])
        return None

    message = wait_until(refused, "a FailedCreatePodSandBox event on pod b")
    assert want in message, message
    assert get("b")["status"].get("phase") == "Pending"


def test_a_restarted_runtime_releases_what_its_pods_held(host_cluster: HostCluster) -> None:
    """The runtime actor is killed and restarted by Ray: the new runtime kills the old pods and GCs
    the plugin, so pod a's recreated sandbox gets its hostPort again (without GC the ledger would
    still hold it for a's old sandbox and refuse it)."""
    c = host_cluster
    port = 20000 + secrets.randbelow(20000)
    manifest = pod("a", "exec sleep 3600", ports=[{"containerPort": port, "hostPort": port}])
    c.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def get() -> dict[str, Any]:
        return dict(json.loads(c.kubectl("get", "pod", "a", "-o", "json")))

    first = wait_until(lambda: running(lambda _: get(), "a"), "pod a running")
    node = first["spec"]["nodeName"]
    namespace = c.env["RAYKUBE_NAMESPACE"]
    script = (
        "import ray; ray.init(address='auto', logging_level='ERROR');"
        f"ray.kill(ray.get_actor('runtime-{node}', namespace={namespace!r}), no_restart=False)"
    )
    subprocess.run([sys.executable, "-c", script], env=c.env, check=True, timeout=120)

    def events(reason: str) -> list[str]:
        items = json.loads(c.kubectl("get", "events", "-o", "json"))["items"]
        return [
            str(e["message"]) for e in items if e["involvedObject"]["name"] == "a" and e["reason"] == reason
        ]

    def container_id(p: dict[str, Any]) -> str:
        statuses = p["status"].get("containerStatuses") or [{}]
        return str(statuses[0].get("containerID", "")) if statuses[0].get("ready") else ""

    old = container_id(first)

    def running_again() -> str | None:
        new = container_id(get())
        return new if new and new != old else None

    wait_until(running_again, "pod a running again in a new sandbox after the runtime restart")
    assert not [m for m in events("FailedCreatePodSandBox") if "hostPort" in m]
