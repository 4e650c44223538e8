"""The network benchmark's CNI half: ADD and DEL per pod through our gRPC plugin and through the
reference plugins executed directly with the same configuration, interleaved pod by pod.

``python -m bench.network_cni --socket S --reference-conflist F --pods P.json`` runs inside the node
network namespace the plugin serves (the reference plugins create their bridge in the namespace
of the process that executes them, so the driver must be where our plugin is). ``P.json`` lists
pairs of pod network namespaces, made beforehand by the caller in the host's mount namespace
(``ip netns exec`` gives its children a private one, where a new named namespace would not be seen
by the plugin's process). For pair ``i`` the driver times one ADD on each side, ours first for even
``i`` and the reference first for odd ``i``, so drift and noise hit both; after all ADDs the same
for DEL, every pod still attached until then (so both bridges hold N pods at their fullest).

- ours: ``CNIClient.add`` / ``.delete`` (no prevResult: the plugin keeps its own), i.e. gRPC to the
  plugin process, its ledger, then the reference plugins run by the plugin;
- reference: what the plugin runs, executed directly (``run_conflist``): the ``loopback`` list for
  ``lo``, then the bridge list (``bridge`` + ``host-local``, ``portmap``) for ``eth0``; DEL runs the
  bridge list with the ADD's result as prevResult, as libcni passes its cached result.

The first ``--warmup`` pairs (their own namespaces) are added and deleted untimed: the first ADD
creates the bridge and, on our side, the node's nft table.

Before the timed pairs, ``VERSION_CALLS`` Version RPCs are timed too: the plugin answers them without
work, so they are the gRPC round trip alone, a part of our ADD's overhead.

Prints ``{"ours": {"add_ms": [...], "del_ms": [...], "version_rpc_ms": [...]}, "reference":
{"add_ms": [...], "del_ms": [...]}}``. Invariants: every pod
the driver added is deleted before it exits, also when a call fails (then it exits non-zero).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from netplugins.bridge.config import BridgeSettings, conflist, loopback_conflist
from netplugins.cni.client import CNIClient
from netplugins.cni.execproto import run_conflist
from netplugins.cni.types import NetRequest, Result

SIDES = ("ours", "reference")
VERSION_CALLS = 50  # the bare gRPC round trip to the plugin, for scale


def reference_conflist(bridge: str, pod_cidr: str, cluster_cidr: str, root_dir: str) -> dict[str, Any]:
    """The bridge plugin's own network configuration list (``netplugins.bridge.config.conflist``) for
    a bridge and podCIDR of the reference side's own, so the two sides never share a bridge or
    host-local's state but run the same configuration."""
    settings = BridgeSettings(bridge=bridge, cluster_cidr=cluster_cidr, pod_cidr=pod_cidr)
    return conflist(settings, pod_cidr, root_dir)


def request(netns: str, side: str, index: int) -> NetRequest:
    name = f"bench-{side}-{index}"
    return NetRequest(
        container_id=f"rkbench{side[0]}{index:04d}",
        netns=f"/run/netns/{netns}",
        ifname="eth0",
        # IgnoreUnknown=1 as containerd and the kubelet send it (the reference plugins need it).
        args={
            "IgnoreUnknown": "1",
            "K8S_POD_NAMESPACE": "bench",
            "K8S_POD_NAME": name,
            "K8S_POD_INFRA_CONTAINER_ID": name,
        },
    )


class Sides:
    """ADD and DEL on both sides, remembering what is attached so ``delete_all`` can undo it."""

    def __init__(self, client: CNIClient, bridge_list: Mapping[str, Any]) -> None:
        self.client = client
        self.bridge_list = bridge_list
        self.attached: dict[tuple[str, str], tuple[NetRequest, Result | None]] = {}

    async def add(self, side: str, req: NetRequest) -> None:
        self.attached[(side, req.container_id)] = (req, None)
        if side == "ours":
            result: Result | None = await self.client.add(req)
        else:
            lo = NetRequest(req.container_id, req.netns, "lo", dict(req.args))
            await run_conflist(loopback_conflist(), "ADD", lo)
            result = await run_conflist(self.bridge_list, "ADD", req)
        self.attached[(side, req.container_id)] = (req, result)

    async def delete(self, side: str, req: NetRequest) -> None:
        _, result = self.attached.get((side, req.container_id), (req, None))
        if side == "ours":
            await self.client.delete(req)
        else:
            with_prev = NetRequest(
                req.container_id, req.netns, req.ifname, dict(req.args), prev_result=result
            )
            await run_conflist(self.bridge_list, "DEL", with_prev)
        self.attached.pop((side, req.container_id), None)

    async def delete_all(self) -> list[str]:
        errors = []
        for (side, _), (req, _) in list(self.attached.items()):
            try:
                await self.delete(side, req)
            except Exception as e:  # keep deleting the others
                errors.append(f"{side} {req.container_id}: {e}")
        return errors


async def timed(call: Callable[[str, NetRequest], Awaitable[None]], side: str, req: NetRequest) -> float:
    """Milliseconds ``call(side, req)`` took."""
    t0 = time.perf_counter_ns()
    await call(side, req)
    return (time.perf_counter_ns() - t0) / 1e6


def order(index: int) -> tuple[str, str]:
    return SIDES if index % 2 == 0 else (SIDES[1], SIDES[0])


async def drive(
    socket: str, bridge_list: Mapping[str, Any], pairs: list[tuple[str, str]], warmup: int
) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {s: {"add_ms": [], "del_ms": []} for s in SIDES}
    async with CNIClient(socket) as client:
        await client.wait_ready()
        sides = Sides(client, bridge_list)
        try:
            reqs = [{s: request(pair[k], s, i) for k, s in enumerate(SIDES)} for i, pair in enumerate(pairs)]
            for i, r in enumerate(reqs[:warmup]):
                for s in order(i):
                    await sides.add(s, r[s])
                    await sides.delete(s, r[s])
            for _ in range(VERSION_CALLS):
                t0 = time.perf_counter_ns()
                await client.version()
                out["ours"].setdefault("version_rpc_ms", []).append((time.perf_counter_ns() - t0) / 1e6)
            measured = list(enumerate(reqs))[warmup:]
            for i, r in measured:
                for s in order(i):
                    out[s]["add_ms"].append(await timed(sides.add, s, r[s]))
            for i, r in measured:
                for s in order(i):
                    out[s]["del_ms"].append(await timed(sides.delete, s, r[s]))
        finally:
            errors = await sides.delete_all()
            if errors:
                print("cleanup after a failure left: " + "; ".join(errors), file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.network_cni", description=__doc__.split("\n\n")[0])
    p.add_argument("--socket", required=True, help="our plugin's unix socket")
    p.add_argument("--reference-conflist", required=True, help="JSON file: the reference side's list")
    p.add_argument("--pods", required=True, help="JSON file: [[our netns, reference netns], ...]")
    p.add_argument("--warmup", type=int, default=2, help="leading pairs added and deleted untimed")
    args = p.parse_args(argv)
    with open(args.reference_conflist) as f:
        bridge_list = json.load(f)
    with open(args.pods) as f:
        pairs = [(str(a), str(b)) for a, b in json.load(f)]
    try:
        out = asyncio.run(drive(args.socket, bridge_list, pairs, args.warmup))
    except Exception as e:
        print(f"CNI latency run failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
