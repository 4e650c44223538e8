"""The pod network across simulated nodes: `raykube up --network bridge` on three Ray nodes, the head
in the root network namespace and two workers each inside a node netns on an underlay bridge
(``netplugins.simnet``), so pod traffic between nodes crosses a routed hop.

What it shows (issue 12): every Node gets a podCIDR and every pod an IP from its node's podCIDR;
a pod reaches a pod on its own node and on the other nodes and the receiver sees the sender's pod
IP (no masquerade inside the cluster CIDR); a pod reaches an address outside the cluster through
masquerade (the receiver sees the node's address); a hostPort answers on its node's address; and
after the pods are deleted and `raykube down --purge` ran, no link, address, route, netns, nft
table or rule of ours is left (compared with a snapshot taken before the run).
And across nodes for Services (issue 13): a pod reaches a Service whose only endpoint is on another
node by ClusterIP and by DNS name (kube-dns on a third node), with its own pod IP as the source,
and the NodePort answers on every node's address.

Runs its own Ray (``own_ray``): the machine's Ray is stopped before and after.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netplugins.simnet import SimulatedNodes
from netplugins.simnet_ray import join_ray_node, ray_env, start_ray_head, stop_ray_head, stop_ray_node
from tests import hostnet
from tests.capabilities import no_netns, require
from tests.integration import support
from tests.integration.conftest import RAYKUBE, ray_stop

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

CLUSTER_CIDR = "10.244.0.0/16"
PORT = 8080

# Answers every connection with the peer address it sees, then closes.
SERVER = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    f"s.bind(('0.0.0.0', {PORT})); s.listen(16)\n"
    "while True:\n"
    "    c, a = s.accept(); c.sendall(a[0].encode()); c.close()\n"
)
RESOLVE = "import socket, sys\nprint(socket.gethostbyname(sys.argv[1]))\n"
CLIENT = (
    "import socket, sys\n"
    "c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)\n"
    "print(c.recv(100).decode())\n"
)


class Cluster:
    def __init__(self, data_dir: Path, address: str) -> None:
        self.data_dir = data_dir
        self.address = address
        self.env = dict(
            ray_env(),
            RAYKUBE_NAMESPACE=f"podnet-{secrets.token_hex(4)}",
            RAY_USAGE_STATS_ENABLED="0",
            COLUMNS="200",
        )
        self.env.pop("RAYKUBE_DATA_DIR", None)

    def raykube(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*RAYKUBE, *args, "--address", self.address, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        assert proc.returncode == 0, (
            f"raykube {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
        return proc

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return support.kubectl_at(self.data_dir / "kubeconfig", *args, input=input)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))


def pod(name: str, node: str, *, host_port: int | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"containerPort": PORT}
    if host_port:
        port["hostPort"] = host_port
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "podnet", "role": name}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["/usr/bin/python3", "-c", SERVER],
                    "ports": [port],
                    "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1},
                }
            ],
        },
    }


def ask(cluster: Cluster, from_pod: str, ip: str, port: int = PORT) -> str:
    """From inside ``from_pod``: connect to ip:port, return the peer address the server saw."""
    return cluster.kubectl("exec", from_pod, "--", "/usr/bin/python3", "-c", CLIENT, ip, str(port)).strip()


class OutsideServer:
    """A TCP server in the root netns (outside the cluster CIDR) recording who connected."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket()
        self.sock.bind((address, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.seen.append(peer[0])
            conn.sendall(peer[0].encode())
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["host-gw", "vxlan"])
def nodes(request: pytest.FixtureRequest) -> Iterator[tuple[SimulatedNodes, str, str]]:
    """The head in the root netns and two worker nodes: on one L2 segment for host-gw, on two
    routed segments (no common L2) for vxlan."""
    require("netns", no_netns())
    backend = request.param
    ray_stop()
    sim = SimulatedNodes(2, segments=[0, 0] if backend == "host-gw" else [0, 1])
    sim.start()
    head = ""
    try:
        head = start_ray_head(sim.head_ip, 6380)
        for node in sim.nodes:
            join_ray_node(node, head, num_cpus=1)
        yield sim, head, backend
    finally:
        for node in sim.nodes:
            stop_ray_node(node)
        if head:
            stop_ray_head(head)
        sim.close()
        ray_stop()


@pytest.mark.timeout(900)
def test_pods_reach_each_other_across_simulated_nodes(
    nodes: tuple[SimulatedNodes, str, str], tmp_path: Path
) -> None:
    sim, head, backend = nodes
    before = hostnet.snapshot()
    cluster = Cluster(tmp_path / "raykube-data", head)
    cluster.raykube("up", "--port", "0", "--network", "bridge", "--network-backend", backend, timeout=400)
    outside = OutsideServer(sim.head_ip)
    try:
        wait = support.wait_until
        ready = wait(lambda: _ready_nodes(cluster, 3), "three Ready nodes with podCIDRs", timeout=240)
        by_ip = {n["ip"]: n for n in ready}
        head_node = next(n["name"] for n in ready if n["ip"] == sim.head_ip)
        workers = [by_ip[node.ip]["name"] for node in sim.nodes]
        assert len({n["cidr"] for n in ready}) == 3, ready

        # Two pods on the first worker, one on the second, one on the head (with a hostPort).
        placement = {"a1": workers[0], "a2": workers[0], "b1": workers[1], "h1": head_node}
        manifests = [
            pod(name, node, host_port=18080 if name == "b1" else None) for name, node in placement.items()
        ]
        cluster.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests})
        )
        pods = wait(lambda: _ready_pods(cluster, set(placement)), "four Ready pods with IPs", timeout=240)

        cidr_of = {n["name"]: ipaddress.ip_network(n["cidr"]) for n in ready}
        ips = {name: p["status"]["podIP"] for name, p in pods.items()}
        assert len(set(ips.values())) == 4, ips
        for name, p in pods.items():
            node = p["spec"]["nodeName"]
            assert ipaddress.ip_address(ips[name]) in cidr_of[node], (name, ips[name], cidr_of[node])
            assert p["status"]["hostIP"] == next(n["ip"] for n in ready if n["name"] == node)
            assert p["status"]["podIPs"] == [{"ip": ips[name]}]

        # Same node, across nodes (both workers in netns), and between the head and a worker:
        # the receiver sees the sender's pod IP.
        assert ask(cluster, "a1", ips["a2"]) == ips["a1"]
        assert ask(cluster, "a1", ips["b1"]) == ips["a1"]
        assert ask(cluster, "b1", ips["a2"]) == ips["b1"]
        assert ask(cluster, "h1", ips["b1"]) == ips["h1"]
        assert ask(cluster, "b1", ips["h1"]) == ips["b1"]

        # The backend really carries it: a VXLAN device on each worker, or plain routes via the nodes.
        for node in sim.nodes:
            links = json.loads(sim.exec(node, ["ip", "-j", "-d", "link", "show", "type", "vxlan"]).stdout)
            routes = json.loads(sim.exec(node, ["ip", "-j", "route"]).stdout)
            other = next(n for n in ready if n["ip"] not in (node.ip, sim.head_ip))
            via = [
                r
                for r in routes
                if r["dst"] == other["cidr"] or r["dst"].startswith(other["cidr"].split("/")[0])
            ]
            if backend == "vxlan":
                assert len(links) == 1 and via and all(r.get("dev") == links[0]["ifname"] for r in via), (
                    routes
                )
            else:
                assert links == [] and via and via[0].get("gateway") == other["ip"], routes

        # Outside the cluster CIDR: masqueraded to the node's own address.
        assert ask(cluster, "a1", sim.head_ip, outside.port) == sim.nodes[0].ip
        assert outside.seen == [sim.nodes[0].ip]

        # hostPort: the second worker's address, port 18080, reaches b1 (from the root netns).
        with socket.create_connection((sim.nodes[1].ip, 18080), timeout=10) as c:
            assert c.recv(100).decode()  # the pod answered (with the address it saw)

        # A Service in front of b1 (second worker), reached from a1 on the first worker by its
        # ClusterIP and its DNS name (kube-dns runs on the head: a third node), keeping a1's pod
        # IP as the source; its NodePort answers on every node's address.
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "to-b1", "namespace": "default"},
            "spec": {
                "type": "NodePort",
                "selector": {"role": "b1"},
                "ports": [{"port": 80, "targetPort": PORT}],
            },
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(service))
        svc = cluster.json("get", "service", "to-b1")
        cluster_ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
        assert (
            wait(lambda: _try(lambda: ask(cluster, "a1", cluster_ip, 80)), "to-b1 by ClusterIP", timeout=60)
            == ips["a1"]
        )
        resolved = cluster.kubectl("exec", "a1", "--", "/usr/bin/python3", "-c", RESOLVE, "to-b1").strip()
        assert resolved == cluster_ip
        assert ask(cluster, "a1", "to-b1.default.svc.cluster.local", 80) == ips["a1"]
        for n in ready:
            with socket.create_connection((n["ip"], node_port), timeout=10) as c:
                assert c.recv(100).decode(), n  # b1 answered through this node's NodePort

        # `kubectl get pods -o wide` shows the IPs and nodes.
        wide = cluster.kubectl("get", "pods", "-o", "wide")
        for name in placement:
            assert ips[name] in wide and placement[name] in wide

        cluster.kubectl("delete", "service", "to-b1")
        cluster.kubectl("delete", "pods", "-l", "app=podnet", "--wait=true", "--timeout=120s")
    finally:
        outside.close()
        cluster.raykube("down", "--purge", timeout=300)
    after = hostnet.snapshot()
    ours = hostnet.diff(before, after)
    assert ours == [], "left behind on the host:\n" + "\n".join(ours)


def _try(probe: Any) -> Any:
    """``probe()``, or None while it raises (a Service's rules and endpoints take a moment)."""
    try:
        return probe()
    except AssertionError:
        return None


def _ready_nodes(cluster: Cluster, count: int) -> list[dict[str, str]] | None:
    out = []
    for n in cluster.json("get", "nodes")["items"]:
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or []
        )
        cidr = n["spec"].get("podCIDR")
        ip = next((a["address"] for a in n["status"].get("addresses") or [] if a["type"] == "InternalIP"), "")
        if ready and cidr:
            out.append({"name": n["metadata"]["name"], "cidr": cidr, "ip": ip})
    return out if len(out) == count else None


def _ready_pods(cluster: Cluster, names: set[str]) -> dict[str, Any] | None:
    items = cluster.json("get", "pods", "-l", "app=podnet")["items"]
    out = {}
    for p in items:
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []
        )
        if ready and p["status"].get("podIP"):
            out[p["metadata"]["name"]] = p
    return out if set(out) == names else None
