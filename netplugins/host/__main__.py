"""Serve the ``host`` network plugin alone: ``python -m netplugins.host --socket S --root D --node N
--node-ip IP``.

Prints ``ready <socket>`` once the socket serves; on SIGTERM or SIGINT stops serving and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from netplugins.cni.plugin import PluginContext
from netplugins.cni.server import serve
from netplugins.host.plugin import HostNetwork


async def _main(args: argparse.Namespace) -> int:
    ctx = PluginContext(node_name=args.node, root_dir=args.root, node_ips=tuple(args.node_ip))
    server = await serve(HostNetwork(ctx), args.socket)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {args.socket}", flush=True)
    await stop.wait()
    await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netplugins.host", description=__doc__)
    p.add_argument("--socket", required=True, help="unix socket path to serve the CNI service on")
    p.add_argument("--root", required=True, help="state directory (the host-port ledger)")
    p.add_argument("--node", required=True, help="node name")
    p.add_argument("--node-ip", action="append", default=[], help="node address (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
