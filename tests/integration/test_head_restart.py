"""Ray's whole cluster dies and comes back with the same disks: raykube comes back with every
acknowledged write, and each store replica back on the host holding its data.

Three Ray nodes with addresses of their own (the head in the root network namespace, two workers in
simulated nodes' namespaces: ``netplugins.simnet``), ``raykube up --replicas 3``: one replica per
node. A writer creates ConfigMaps through the API server while every Ray process on every node is
killed (what losing Ray's head does to a cluster without GCS fault tolerance). Ray is started again
on the same addresses (new Ray node ids), ``raykube up`` runs again as the head's start commands
would, and then every replica runs on the host it ran on before (its data directory is on that
host's disk; here the disks are one, so the placement is checked directly) and every ConfigMap whose
create was acknowledged is read back.

Runs its own Ray (``own_ray``): the machine's Ray is stopped before and after.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from netplugins.simnet import SimulatedNodes
from netplugins.simnet_ray import join_ray_node, ray_env, start_ray_head, stop_ray_head, stop_ray_node
from tests.capabilities import no_netns, require
from tests.integration import support
from tests.integration.conftest import RAYKUBE, ray_stop

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]


class Writer(threading.Thread):
    """Creates ConfigMaps one after another with the official client; keeps the acknowledged names."""

    def __init__(self, kubeconfig: Path) -> None:
        super().__init__(daemon=True)
        from kubernetes import client, config

        self.api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
        self.acked: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            name = f"w-{i}"
            i += 1
            try:
                self.api.create_namespaced_config_map(
                    "default", {"metadata": {"name": name}, "data": {"i": str(i)}}, _request_timeout=5
                )
            except Exception:
                continue  # not acknowledged: it may or may not exist afterwards
            self.acked.append(name)


def store_rows(out: str) -> dict[str, str]:
    """``raykube status``'s store table: replica -> the IP of its node."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if line.startswith("│") and cells and cells[0].startswith("store-"):
            rows[cells[0]] = cells[1].split(" ")[0]
    return rows


@pytest.mark.timeout(900)
def test_a_restarted_ray_brings_raykube_back_with_every_acknowledged_write(data_dir: Path) -> None:
    require("netns", no_netns())
    ray_stop()
    sim = SimulatedNodes(2, segments=[0, 0])
    sim.start()
    env = dict(ray_env(), RAYKUBE_NAMESPACE=f"restart-{secrets.token_hex(4)}", COLUMNS="200")
    env.pop("RAYKUBE_DATA_DIR", None)
    head = ""

    ports = iter(range(6380, 6390))

    def start_ray() -> str:
        # A port of its own each time: the killed head's GCS may hold the last one for a moment.
        address = start_ray_head(sim.head_ip, next(ports))
        for node in sim.nodes:
            join_ray_node(node, address, num_cpus=1)
        return address

    def stop_ray() -> None:
        for node in sim.nodes:
            stop_ray_node(node, grace=1.0)
        stop_ray_head(head, grace=5.0)

    def raykube(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*RAYKUBE, *args, "--address", head, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=400,
            check=False,
        )
        assert proc.returncode == 0 or not check, f"raykube {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    try:
        head = start_ray()
        first = raykube("up", "--replicas", "3", "--runtime", "none", "--port", "0")
        assert "3 replicas on 3 distinct Ray nodes" in first.stdout, first.stdout
        homes = json.loads((data_dir / "store" / "homes.json").read_text())
        before = store_rows(raykube("status").stdout)
        assert {f"store-{rid}": home["ip"] for rid, home in homes.items()} == before
        assert set(before.values()) == {sim.head_ip, *(n.ip for n in sim.nodes)}  # one per host

        writer = Writer(data_dir / "kubeconfig")
        writer.start()
        support.wait_until(lambda: len(writer.acked) >= 30, "30 acknowledged creates", timeout=120)
        stop_ray()  # every Ray process on every node, while the writer writes
        writer.stop.set()
        writer.join(timeout=30)
        acked = list(writer.acked)

        head = start_ray()  # same addresses, new Ray node ids
        again = raykube("up", "--replicas", "3", "--runtime", "none", "--port", "0")
        assert "3 replicas back on the hosts holding their data" in again.stdout, again.stdout
        assert store_rows(raykube("status").stdout) == before

        def present() -> set[str] | None:
            items: list[dict[str, Any]] = json.loads(
                support.kubectl_at(data_dir / "kubeconfig", "get", "configmaps", "-o", "json")
            )["items"]
            return {i["metadata"]["name"] for i in items}

        names = support.wait_until(present, "the ConfigMaps listed", timeout=60)
        missing = [n for n in acked if n not in names]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged ConfigMaps lost: {missing[:10]}"
        print(f"\n{len(acked)} acknowledged creates, all read back after the restart")
    finally:
        if head:
            raykube("down", "--purge", check=False)
            stop_ray()
        sim.close()
        ray_stop()
