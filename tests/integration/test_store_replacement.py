"""A store replica lost for good is replaced: the node of the store's leader dies with a writer running.

``ray.cluster_utils``: a head without CPUs (so the STRICT_SPREAD placement group of
``raykube up --replicas 3`` puts the replicas on the three workers, and Ray cannot move the dead
node's bundle anywhere) and three workers, fast failure detection. The worker hosting the leader is
removed: the two others elect a leader and the store is writable again; the store keeper (in the
controller manager, grace 8 s here) removes the lost member, starts ``store-4`` on the one live node
without a replica (the head) and adds it; the store ends with three voters on three live nodes and
every acknowledged write reads back. Then an operator removes and adds a member by hand
(``raykube store member remove|add``), an unsafe or unknown removal is refused, and a second
``raykube up`` finds the current members instead of recreating removed ones.

Stops the machine's Ray first, as the other multi-node tests do.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration import support
from tests.integration.conftest import ray_stop, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

NAMESPACE = "storerepl"
wait_until = functools.partial(support.wait_until, timeout=120.0, every=0.5)


class Writer(threading.Thread):
    """Puts ``/w/<n>`` one after another through a StoreClient, recording (issued, acked) times of
    every acknowledged write; a write whose outcome is unknown (Unavailable) is not recorded."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.acked: dict[bytes, tuple[bytes, float, float]] = {}
        self.unknown = 0
        self.stop = threading.Event()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from cluster.store.client import StoreClient, Unavailable

        client = await StoreClient.connect(NAMESPACE, deadline=30.0, request_timeout=2.0)
        n = 0
        while not self.stop.is_set():
            n += 1
            key, value = f"/w/{n:06d}".encode(), f"v{n}".encode()
            issued = time.monotonic()
            try:
                await client.put(key, value)
            except Unavailable:
                self.unknown += 1
                continue
            self.acked[key] = (value, issued, time.monotonic())
            await asyncio.sleep(0.01)
        await client.close()


def statuses() -> list[dict[str, Any]]:
    from cluster.store.client import StoreClient

    async def go() -> list[dict[str, Any]]:
        client = await StoreClient.connect(NAMESPACE, deadline=10.0, request_timeout=2.0)
        return await client.status()

    return asyncio.run(go())


def voters_on_live_nodes() -> list[tuple[int, str]] | None:
    """[(voter id, its Ray node)] when there are exactly three voters, all healthy, on three distinct
    live nodes, and every replica actor is one of them; else None."""
    import ray

    alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    sts = statuses()
    leaders = [s for s in sts if s.get("role") == "leader" and s.get("health") == "ok"]
    if len(leaders) != 1:
        return None
    voters = sorted(leaders[0]["voters"])
    by_id = {s["id"]: s for s in sts}
    placed = [
        (v, by_id[v].get("node_id", "")) for v in voters if v in by_id and by_id[v].get("health") == "ok"
    ]
    nodes = {node for _, node in placed}
    ok = len(voters) == 3 and len(placed) == 3 and len(nodes) == 3 and nodes <= alive
    return placed if ok and sorted(by_id) == voters else None


def read_back(keys: list[bytes]) -> dict[bytes, bytes | None]:
    from cluster.store.client import StoreClient

    async def go() -> dict[bytes, bytes | None]:
        client = await StoreClient.connect(NAMESPACE, deadline=30.0)
        rr = await client.get_prefix(b"/w/")
        found = {kv.key: kv.value for kv in rr.kvs}
        return {k: found.get(k) for k in keys}

    return asyncio.run(go())


@pytest.mark.timeout(600)
def test_the_leaders_node_dies_and_a_replacement_replica_joins(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAYKUBE_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("RAYKUBE_STORE_KEEPER_GRACE", "8")  # inherited by the raylets' workers
    ray_stop()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3},
        },
    )
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(3)]
        cluster.wait_for_nodes()
        up = run_cli(
            "up", "--address", cluster.address, "--replicas", "3", "--runtime", "none", data_dir=data_dir
        )
        assert "STRICT_SPREAD" in up.stdout, up.stdout
        ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
        head_id = ray.get_runtime_context().get_node_id()
        placed = wait_until(voters_on_live_nodes, "three voters on three nodes")
        assert head_id not in {node for _, node in placed}, placed
        leader = next(s for s in statuses() if s.get("role") == "leader")
        victim = next(w for w in workers if w.node_id == leader["node_id"])

        writer = Writer()
        writer.start()
        wait_until(lambda: len(writer.acked) >= 50, "50 acknowledged writes before the fault")
        killed = time.monotonic()
        cluster.remove_node(victim)

        def written_after_kill() -> float | None:
            after = [acked for _, issued, acked in list(writer.acked.values()) if issued > killed]
            return min(after) - killed if after else None

        writable = wait_until(written_after_kill, "a write issued after the kill acknowledged", timeout=60)
        # The API too: a create through the kubeconfig's server (the API servers share one port; the
        # dead node's instance is gone from it) succeeds, and reads back.
        kubeconfig = data_dir / "kubeconfig"
        attempt = iter(range(1000))

        def api_create() -> float | None:
            name = f"after-loss-{next(attempt)}"
            try:
                support.kubectl_at(
                    kubeconfig, "create", "configmap", name, "--from-literal=k=v", "--request-timeout=5s"
                )
            except AssertionError:
                return None
            return time.monotonic() - killed

        api_writable = wait_until(
            api_create, "a ConfigMap created through the API after the kill", timeout=60
        )
        try:
            placed = wait_until(voters_on_live_nodes, "three voters on three live nodes again", timeout=180)
        except AssertionError as e:
            raise AssertionError(f"{e}\nreplicas: {statuses()}\nkeeper: {keeper_log()}") from None
        recovered = time.monotonic() - killed
        ids = [rid for rid, _ in placed]
        assert leader["id"] not in ids and 4 in ids, placed
        assert dict(placed)[4] == head_id, (
            f"the replacement should be on the only free node (the head): {placed}"
        )
        time.sleep(1.0)
        writer.stop.set()
        writer.join(60)
        found = read_back(list(writer.acked))
        missing = [k for k, (v, _, _) in writer.acked.items() if found[k] != v]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
        print(
            f"\nstore replacement: writable again {writable:.1f}s after the leader's node died "
            f"(through the API server {api_writable:.1f}s); "
            f"three voters on three live nodes after {recovered:.1f}s; {len(writer.acked)} acknowledged "
            f"writes all read back ({writer.unknown} with unknown outcome)"
        )
        members = run_cli("store", "members", "--address", cluster.address, data_dir=data_dir)
        assert members.stdout.count(" yes ") == 3, members.stdout

        # By hand: unknown ids are refused, then remove the replacement and add another on a free node.
        refused = run_cli(
            "store", "member", "remove", "99", "--address", cluster.address, data_dir=data_dir, check=False
        )
        assert refused.returncode == 1 and "not a member" in refused.stdout, refused.stdout
        first, last = sorted(rid for rid, _ in placed if rid != 4)
        run_cli("store", "member", "remove", "4", "--address", cluster.address, data_dir=data_dir)
        both = run_cli(
            "store",
            "member",
            "remove",
            str(first),
            "--address",
            cluster.address,
            data_dir=data_dir,
            check=False,
        )
        assert both.returncode == 0, both.stdout  # two healthy voters: one may go (one is a quorum of one)
        wait_until(has_leader, "a leader after the first of them left")
        alone = run_cli(
            "store",
            "member",
            "remove",
            str(last),
            "--address",
            cluster.address,
            data_dir=data_dir,
            check=False,
        )
        assert alone.returncode == 1 and "last member" in alone.stdout, alone.stdout
        for _ in range(2):
            run_cli("store", "member", "add", "--address", cluster.address, data_dir=data_dir)
        placed = wait_until(voters_on_live_nodes, "three voters after the operator's changes")
        assert sorted(rid for rid, _ in placed) == sorted([last, 5, 6]), placed
        assert found_all(writer.acked), "acknowledged writes lost after the operator's changes"

        # A second `raykube up` finds the current members and resurrects no removed id.
        run_cli("up", "--address", cluster.address, "--replicas", "3", "--runtime", "none", data_dir=data_dir)
        names = sorted(
            e["name"]
            for e in ray.util.list_named_actors(all_namespaces=True)
            if e["namespace"] == NAMESPACE and e["name"].startswith("store-")
        )
        assert names == sorted(f"store-{r}" for r in (last, 5, 6)), names
    finally:
        if "writer" in locals():
            writer.stop.set()
            writer.join(60)
        ray.shutdown()
        run_cli("down", "--purge", "--address", cluster.address, data_dir=data_dir, check=False)
        cluster.shutdown()
        ray_stop()


def found_all(acked: dict[bytes, tuple[bytes, float, float]]) -> bool:
    found = read_back(list(acked))
    return all(found[k] == v for k, (v, _, _) in acked.items())


def has_leader() -> bool:
    return any(s.get("role") == "leader" and s.get("health") == "ok" for s in statuses())


def keeper_log() -> str:
    """The store keeper's lines from this Ray session's worker logs (for a failure's message)."""
    lines = []
    for path in Path("/tmp/ray/session_latest/logs").glob("worker-*.err"):
        lines += [line for line in path.read_text(errors="replace").splitlines() if "store keeper" in line]
    return "\n".join(lines[-30:])


@pytest.mark.timeout(600)
def test_a_replica_restarted_without_its_disk_refuses_and_is_replaced(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real hosts: Ray moves the dead node's bundle to the spare worker and restarts the replica
    there, where its data directory is empty. All ``cluster_utils`` nodes share one disk, so the
    node-local disk is played by moving the replica's directory away as its node dies: the
    restarted replica must refuse (never vote with an empty log under its old identity) and the
    keeper replaces it on that same spare node, the only one without a replica."""
    import shutil

    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAYKUBE_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("RAYKUBE_STORE_KEEPER_GRACE", "8")
    ray_stop()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3},
        },
    )
    writer: Writer | None = None
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(4)]
        cluster.wait_for_nodes()
        run_cli("up", "--address", cluster.address, "--replicas", "3", "--runtime", "none", data_dir=data_dir)
        ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
        placed = wait_until(voters_on_live_nodes, "three voters on three nodes")
        spare = next(w for w in workers if w.node_id not in {node for _, node in placed})
        follower = next(s for s in statuses() if s.get("role") == "follower")
        victim = next(w for w in workers if w.node_id == follower["node_id"])
        writer = Writer()
        writer.start()
        wait_until(lambda: len(writer.acked) >= 50, "50 acknowledged writes before the fault")
        lost_dir = data_dir / "store" / f"replica-{follower['id']}"
        killed = time.monotonic()
        cluster.remove_node(victim)
        shutil.move(lost_dir, lost_dir.with_name(f"{lost_dir.name}.lost"))

        def refusing() -> dict[str, Any] | None:
            st = next((s for s in statuses() if s["id"] == follower["id"]), None)
            return st if st and str(st.get("health", "")).startswith("awaiting replacement") else None

        st = wait_until(refusing, f"store-{follower['id']} restarted on the spare node, refusing", timeout=60)
        assert st["node_id"] == spare.node_id, st
        placed = wait_until(voters_on_live_nodes, "three voters on three live nodes again", timeout=180)
        recovered = time.monotonic() - killed
        assert dict(placed).get(4) == spare.node_id, placed
        writer.stop.set()
        writer.join(60)
        assert found_all(writer.acked), "acknowledged writes lost"
        print(
            f"\nrefusing replica replaced: three voters on three live nodes {recovered:.1f}s after the "
            f"node died; {len(writer.acked)} acknowledged writes read back"
        )
    finally:
        if writer is not None:
            writer.stop.set()
            writer.join(60)
        ray.shutdown()
        run_cli("down", "--purge", "--address", cluster.address, data_dir=data_dir, check=False)
        cluster.shutdown()
        ray_stop()
