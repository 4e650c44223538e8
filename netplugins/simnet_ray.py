"""Ray nodes inside simulated nodes (``netplugins/simnet.py``): a head in the root namespace on the
underlay bridge's address, worker nodes joined from node namespaces, and stopping one node or the
head without ``ray stop`` (which stops every Ray on the machine).

Invariants:
- Every ``ray start`` and every driver runs with ``ray_env()``: Ray 2.60's head enables token auth
  (``RAY_AUTH_MODE=token``, token in ``~/.ray/auth_token``), and joiners must ask for it too.
- ``stop_ray_node`` kills exactly the processes living in that node's namespace (SIGTERM, then
  SIGKILL); ``stop_ray_head`` the root-namespace processes naming the head's address and their
  children, never the caller or its ancestors.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from netplugins.simnet import SimNode, kill_netns_processes

RAY = Path(sys.executable).with_name("ray")


def ray_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for ``ray start`` and drivers: Ray 2.60's head enables token auth, so joiners
    must ask for it too (the token is read from ``~/.ray/auth_token``)."""
    return dict(os.environ, RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0", **(extra or {}))


def _ray_start(prefix: Sequence[str], args: Sequence[str], timeout: float) -> None:
    proc = subprocess.run(
        [*prefix, str(RAY), "start", *args],
        capture_output=True,
        text=True,
        env=ray_env(),
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"ray start {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )


def start_ray_head(address: str, port: int, *, num_cpus: int = 1, timeout: float = 180) -> str:
    """Start a Ray head in the root namespace on ``address`` (the underlay bridge's); its GCS address.

    Drivers in the root namespace connect to the returned ``address:port`` with ``ray_env()``.
    """
    _ray_start(
        [],
        ["--head", "--node-ip-address", address, "--port", str(port), "--num-cpus", str(num_cpus)],
        timeout,
    )
    return f"{address}:{port}"


def join_ray_node(
    node: SimNode,
    head_address: str,
    num_cpus: int = 1,
    *,
    resources: Mapping[str, float] | None = None,
    timeout: float = 180,
) -> None:
    """Start a Ray worker node inside ``node``'s namespace, joining ``head_address`` (``ip:port``)."""
    args = ["--address", head_address, "--node-ip-address", node.ip, "--num-cpus", str(num_cpus)]
    if resources:
        args += ["--resources", json.dumps(dict(resources))]
    _ray_start(["ip", "netns", "exec", node.netns], args, timeout)


def stop_ray_node(node: SimNode, grace: float = 10.0) -> list[int]:
    """Stop the Ray node (and anything else) running in ``node``'s namespace; the PIDs signalled."""
    return kill_netns_processes(node.netns, grace)


def mentions_address(cmdline: str, address: str) -> bool:
    """Whether ``cmdline`` names ``address`` as a whole address (10.0.0.1 is not in 10.0.0.12)."""
    return re.search(rf"(?<![\d.]){re.escape(address)}(?![\d])", cmdline) is not None


def process_tree(parents: Mapping[int, int], roots: Iterable[int]) -> set[int]:
    """``roots`` and all their descendants, given ``{pid: ppid}``."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def _processes() -> dict[int, tuple[int, str, int]]:
    """``{pid: (ppid, cmdline, netns inode)}`` of the processes readable now."""
    table: dict[int, tuple[int, str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            table[int(entry.name)] = (ppid, cmdline, (entry / "ns" / "net").stat().st_ino)
        except (OSError, ValueError, IndexError):
            continue
    return table


def ray_head_pids(address: str) -> set[int]:
    """The root-namespace processes of the Ray head on ``address`` (those naming it, e.g. gcs_server,
    raylet, dashboard, monitor, and their children); never this process or its ancestors."""
    table = _processes()
    root_ns = Path("/proc/self/ns/net").stat().st_ino
    mine, pid = set(), os.getpid()
    while pid in table and pid not in mine:
        mine.add(pid)
        pid = table[pid][0]
    roots = [p for p, (_, cmd, ns) in table.items() if ns == root_ns and mentions_address(cmd, address)]
    tree = process_tree({p: v[0] for p, v in table.items() if v[2] == root_ns}, roots)
    return tree - mine


def stop_ray_head(address: str, grace: float = 10.0) -> list[int]:
    """Stop the Ray head started by ``start_ray_head(address, ...)`` without ``ray stop`` (which would
    stop every Ray on the machine): SIGTERM its processes, SIGKILL what is left after ``grace``."""
    seen: set[int] = set()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = ray_head_pids(address)
        for pid in pids:
            seen.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while ray_head_pids(address) and time.monotonic() < deadline:
            time.sleep(0.1)
    return sorted(seen)


def ray_node_ids_by_ip(nodes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``{NodeManagerAddress: NodeID}`` of the alive nodes in ``ray.nodes()`` output."""
    return {str(n["NodeManagerAddress"]): str(n["NodeID"]) for n in nodes if n.get("Alive")}


def addresses_of(ip_addr_json: Iterable[Mapping[str, Any]]) -> set[str]:
    """The IPv4 addresses in ``ip -j addr`` output (what an actor reports from inside a namespace)."""
    return {
        str(info["local"])
        for link in ip_addr_json
        for info in link.get("addr_info", [])
        if info.get("family") == "inet"
    }


__all__ = [
    "RAY",
    "addresses_of",
    "join_ray_node",
    "mentions_address",
    "process_tree",
    "ray_env",
    "ray_head_pids",
    "ray_node_ids_by_ip",
    "start_ray_head",
    "stop_ray_head",
    "stop_ray_node",
]
