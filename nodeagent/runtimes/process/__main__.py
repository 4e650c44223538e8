"""Run the process runtime alone: ``python -m nodeagent.runtimes.process --socket S --root D
[--network-socket N]``.

Serves until SIGTERM or SIGINT, then kills every pod process and exits 0. Prints ``ready <socket>``
on stdout once the socket accepts calls, so a supervisor can wait for that line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from nodeagent.runtimes.process.isolation import probe
from nodeagent.runtimes.process.server import serve, stop_server


async def _main(args: argparse.Namespace) -> int:
    isolation = probe(args.isolation)
    runtime = await serve(
        args.socket,
        args.root,
        isolation=isolation,
        cgroup_base=args.cgroup_base,
        network_socket=args.network_socket,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {args.socket} isolation={isolation.mode}", flush=True)
    await stop.wait()
    await stop_server(runtime)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nodeagent.runtimes.process", description=__doc__)
    p.add_argument("--socket", required=True, help="unix socket path to serve the CRI on")
    p.add_argument("--root", required=True, help="state directory (image records)")
    p.add_argument("--isolation", choices=["root", "userns", "plain"], default=None, help="force a mode")
    p.add_argument(
        "--network-socket", default=None, help="the node's CNI network plugin socket (default: loopback only)"
    )
    p.add_argument("--cgroup-base", default="raykube", help="cgroup v1 subtree for container limits")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
