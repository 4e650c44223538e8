"""``python -m nodeagent.csi.sanity --socket PATH``: the conformance kit against a CSI socket.

Prints one line per check (PASS, SKIP with the reason, FAIL with what the driver did) and a
summary; exits 1 when a check failed, 2 when nothing answers on the socket. Node checks mount
below ``--staging`` and ``--target`` (temporary directories by default), so run it on the driver's
machine as the driver's user (root for a driver that mounts).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile

from nodeagent.csi import kit
from nodeagent.csi.client import CSIClient
from nodeagent.csi.errors import CSIError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nodeagent.csi.sanity", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--socket", required=True, help="the CSI driver's unix socket")
    parser.add_argument("--staging", help="parent directory of staging paths (default: a temporary one)")
    parser.add_argument(
        "--target", help="parent directory of publish target paths (default: a temporary one)"
    )
    parser.add_argument("--volume-size", type=int, default=32 << 20, help="bytes per test volume (32 MiB)")
    parser.add_argument(
        "--only", action="append", default=[], help="run checks matching this glob (repeatable)"
    )
    parser.add_argument(
        "--wait", type=float, default=10.0, help="seconds to wait for the driver to answer (10)"
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> int:
    names = kit.select(args.only)
    if args.list:
        print("\n".join(names))
        return 0
    if not names:
        print(f"no check matches {args.only}; see --list", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="csi-sanity-") as tmp:
        config = kit.KitConfig(
            staging_dir=args.staging or f"{tmp}/staging",
            target_dir=args.target or f"{tmp}/target",
            volume_size=args.volume_size,
        )
        async with CSIClient(args.socket) as client:
            try:
                info = await client.wait_ready(timeout=args.wait)
            except CSIError as e:
                print(f"cannot reach a CSI driver at {args.socket}: {e}", file=sys.stderr)
                return 2
            print(f"driver {info.name} {info.vendor_version} at {args.socket}")
            results = await kit.run(client, config, names)
    for r in results:
        print(f"{r.status.upper():4} {r.name}" + (f": {r.message}" if r.message else ""))
    failed = [r for r in results if r.status == "fail"]
    skipped = sum(r.status == "skip" for r in results)
    print(f"{len(results) - len(failed) - skipped} passed, {skipped} skipped, {len(failed)} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
