"""`raykube up / status / store / down` end to end, as a user runs them (each in its own process)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.integration import support
from tests.integration.conftest import ray_stop, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"


def kubectl(kubeconfig: str, *args: str) -> str:
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout.strip()


def table_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]


def status_rows(out: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.split("│")[1:-1]]
        for line in out.splitlines()
        if line.startswith("│") and "store-" in line
    ]


def test_up_is_idempotent_and_data_survives_down_up_and_a_crash(data_dir: Path) -> None:
    ray_stop()
    try:
        first = run_cli("up", data_dir=data_dir)
        assert "started a local Ray head" in first.stdout
        assert "store started" in first.stdout
        again = run_cli("up", data_dir=data_dir)
        assert "store already running" in again.stdout

        st = run_cli("status", data_dir=data_dir)
        rows = status_rows(st.stdout)
        assert len(rows) == 1, st.stdout
        replica, _node, url, role, leader, term, commit, applied, _revision, health = rows[0]
        assert (replica, role, leader, health) == ("store-1", "leader", "store-1", "ok")
        assert re.fullmatch(r"https://[0-9.]+:\d+", url), url  # where etcdctl reaches it
        assert int(term) >= 1 and int(commit) >= 1 and int(applied) == int(commit)

        for i in range(3):
            run_cli("store", "put", f"/t/k{i}", f"v{i}", data_dir=data_dir)
        assert run_cli("store", "get", "/t/k1", data_dir=data_dir).stdout.strip() == "v1"
        listed = run_cli("store", "get", "--prefix", "/t/", data_dir=data_dir).stdout.splitlines()
        assert listed == ["/t/k0\tv0", "/t/k1\tv1", "/t/k2\tv2"]
        missing = run_cli("store", "get", "/t/nope", data_dir=data_dir, check=False)
        assert missing.returncode == 1 and "not found" in missing.stdout

        # A Kubernetes object, written through the API server with the real kubectl.
        kubeconfig = run_cli("kubeconfig", data_dir=data_dir).stdout.strip()
        assert kubeconfig == str(data_dir / "kubeconfig")
        kubectl(kubeconfig, "create", "configmap", "survivor", "--from-literal=k=v")

        down = run_cli("down", data_dir=data_dir)
        assert "stopped the local Ray head" in down.stdout
        assert run_cli("status", data_dir=data_dir, check=False).returncode == 1

        run_cli("up", data_dir=data_dir)
        assert run_cli("store", "get", "/t/k2", data_dir=data_dir).stdout.strip() == "v2"
        assert kubectl(kubeconfig, "get", "cm", "survivor", "-o", "jsonpath={.data.k}") == "v"

        # A crash: Ray and every actor killed without warning; the store recovers from its WAL.
        run_cli("store", "put", "/t/after-restart", "acked", data_dir=data_dir)
        ray_stop()
        (data_dir / "ray-started-by-raykube").unlink(missing_ok=True)
        run_cli("up", data_dir=data_dir)
        assert run_cli("store", "get", "/t/after-restart", data_dir=data_dir).stdout.strip() == "acked"
        assert kubectl(kubeconfig, "get", "cm", "survivor", "-o", "jsonpath={.data.k}") == "v"

        refused = run_cli("up", "--replicas", "3", data_dir=data_dir, check=False)
        assert refused.returncode == 2 and "down --purge" in refused.stdout
    finally:
        run_cli("down", "--purge", data_dir=data_dir, check=False)
        ray_stop()
    assert not data_dir.exists()


def test_three_replicas_on_one_node_elect_one_leader(data_dir: Path) -> None:
    ray_stop()
    try:
        up = run_cli("up", "--replicas", "3", data_dir=data_dir)
        assert "3 replica(s) on this node (only 1 Ray node(s); STRICT_SPREAD needs 3)" in up.stdout
        run_cli("store", "put", "/x", "y", data_dir=data_dir)
        st = run_cli("status", data_dir=data_dir)
        rows = status_rows(st.stdout)
        assert [r[0] for r in rows] == ["store-1", "store-2", "store-3"]
        assert sorted(r[3] for r in rows) == ["follower", "follower", "leader"]
        leader = next(r[0] for r in rows if r[3] == "leader")
        assert {r[4] for r in rows} == {leader}
        assert len({r[5] for r in rows}) == 1  # one term
        assert all(r[9] == "ok" for r in rows)
        assert len({r[2] for r in rows}) == 3, st.stdout  # a client URL (port) of its own each
        assert re.search(r"store-\d", st.stdout)
    finally:
        run_cli("down", "--purge", data_dir=data_dir, check=False)
        ray_stop()


def test_three_replicas_spread_over_three_ray_nodes(data_dir: Path) -> None:
    from ray.cluster_utils import Cluster

    ray_stop()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        up = run_cli("up", "--address", cluster.address, "--replicas", "3", data_dir=data_dir)
        assert "joined the running Ray cluster" in up.stdout
        assert "3 replicas on 3 distinct Ray nodes (STRICT_SPREAD)" in up.stdout
        st = run_cli("status", "--address", cluster.address, data_dir=data_dir)
        rows = status_rows(st.stdout)
        assert len(rows) == 3
        assert len({r[1] for r in rows}) == 3, st.stdout  # three different node ids
        assert sorted(r[3] for r in rows) == ["follower", "follower", "leader"]

        # The other tables: each Ray node beside its Ready Node, three instances of each control-plane
        # component (one per replica's node), one scheduler and one controller manager holding the Lease.
        def cluster_tables() -> tuple[list[list[str]], list[list[str]]] | None:
            out = run_cli("status", "--address", cluster.address, data_dir=data_dir).stdout
            rows = table_rows(out)
            nodes = [r for r in rows if len(r) == 7 and r[3] == "ALIVE"]
            instances = [r for r in rows if len(r) == 4 and r[0].startswith("kube-")]
            ready = len(nodes) == 3 and all(r[4] == "True" for r in nodes)
            leaders = sorted(r[0] for r in instances if r[3] == "yes")
            done = ready and leaders == ["kube-controller-manager", "kube-scheduler"]
            return (nodes, instances) if done else None

        nodes, instances = support.wait_until(cluster_tables, "Ready nodes and both leases held", timeout=90)
        assert sorted(r[0] for r in instances) == sorted(
            ["kube-apiserver", "kube-scheduler", "kube-controller-manager"] * 3
        )
        assert {r[2] for r in instances} == {r[0] for r in nodes}  # an instance of each on every node
        assert (
            "autoscaler: no request in flight"
            in run_cli("status", "--address", cluster.address, data_dir=data_dir).stdout
        )
        run_cli("store", "put", "--address", cluster.address, "/spread", "ok", data_dir=data_dir)
        got = run_cli("store", "get", "--address", cluster.address, "/spread", data_dir=data_dir)
        assert got.stdout.strip() == "ok"
    finally:
        run_cli("down", "--purge", "--address", cluster.address, data_dir=data_dir, check=False)
        cluster.shutdown()
        ray_stop()
