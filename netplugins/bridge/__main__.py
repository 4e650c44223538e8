"""``python -m netplugins.bridge``: serve the bridge plugin on a unix socket (tests, the benchmark).

Prints ``ready <socket>`` on stdout once serving; SIGTERM/SIGINT stop it (``--purge-on-exit`` also
purges the node's state). Without ``--kubeconfig`` the podCIDR comes from ``--pod-cidr`` and the
other nodes from ``--peers`` (a JSON file: ``[{"name", "podCIDR", "ip", "vtepMAC"?}]``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile

from netplugins.bridge.config import BACKENDS, DEFAULT_BRIDGE, DEFAULT_CLUSTER_CIDR
from netplugins.bridge.plugin import BridgeNetwork
from netplugins.cni.plugin import PluginContext
from netplugins.cni.server import serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m netplugins.bridge", description=__doc__)
    p.add_argument("--socket", required=True, help="unix socket path to serve on")
    p.add_argument("--root", help="state directory (default: a new temporary directory)")
    p.add_argument("--node", default=os.uname().nodename, help="this node's name")
    p.add_argument("--node-ip", help="this node's address (default: the source of the default route)")
    p.add_argument("--pod-cidr", help="this node's podCIDR (default: the Node's spec.podCIDR)")
    p.add_argument("--cluster-cidr", default=DEFAULT_CLUSTER_CIDR)
    p.add_argument("--bridge", default=DEFAULT_BRIDGE)
    p.add_argument("--backend", choices=BACKENDS, default="host-gw")
    p.add_argument("--peers", help="JSON file with the other nodes (without an API server)")
    p.add_argument("--kubeconfig", help="read Nodes from this API server")
    p.add_argument("--resync", type=float, default=5.0, help="seconds between node syncs")
    p.add_argument("--purge-on-exit", action="store_true", help="purge the node's state on exit")
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    options: dict[str, object] = {
        "bridge": args.bridge,
        "cluster_cidr": args.cluster_cidr,
        "backend": args.backend,
        "resync": args.resync,
    }
    if args.pod_cidr:
        options["pod_cidr"] = args.pod_cidr
    if args.peers:
        with open(args.peers) as f:
            options["peers"] = json.load(f)
    ctx = PluginContext(
        node_name=args.node,
        root_dir=args.root or tempfile.mkdtemp(prefix="rkbridge-"),
        node_ips=(args.node_ip,) if args.node_ip else (),
        options=options,
        kubeconfig=args.kubeconfig,
    )
    server = await serve(BridgeNetwork(ctx), args.socket)
    print(f"ready {args.socket}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    await server.stop(purge=args.purge_on_exit)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(parse_args()))
