"""Run the containerd plugin alone, without Ray: `python -m nodeagent.runtimes.containerd --root D`.

Starts containerd under D (pods networked by its own bridge conflist, or with `--network-socket S`
by the raykube network plugin serving S, through the raykube-cni shim), prints the CRI socket path,
and on SIGINT/SIGTERM removes the pods, stops containerd and cleans up the host (see cleanup.py).
Exit code 2 when the machine cannot run it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from nodeagent.runtimes.containerd.config import DEFAULT_BRIDGE, DEFAULT_POD_CIDR
from nodeagent.runtimes.containerd.supervisor import ContainerdRuntime, ContainerdUnavailable


async def _main(args: argparse.Namespace) -> int:
    rt = ContainerdRuntime(
        args.root, pod_cidr=args.pod_cidr, bridge=args.bridge, network_socket=args.network_socket
    )
    try:
        socket_path = await rt.start()
    except ContainerdUnavailable as e:
        print(e, file=sys.stderr)
        return 2
    print(socket_path, flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await rt.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodeagent.runtimes.containerd")
    parser.add_argument("--root", required=True, help="directory for containerd's root, state and socket")
    parser.add_argument("--pod-cidr", default=DEFAULT_POD_CIDR)
    parser.add_argument("--bridge", default=DEFAULT_BRIDGE)
    parser.add_argument(
        "--network-socket",
        help="a raykube network plugin's socket: pods get their network from it through the raykube-cni shim",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
