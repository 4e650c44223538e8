"""Wait until COUNT alive Ray nodes carry RESOURCE, then exit 0 (exit 1 after TIMEOUT seconds).

Why: the head's start commands run while the autoscaler is still launching the control-plane nodes
(their ``min_workers``). ``raykube up --replicas 3`` places the store replicas on the nodes alive at
that moment and keeps them there, so started too early it would put all three on the head. The
`ray up` configs in deploy/ mount this file on the head and run it just before ``raykube up``.

    python wait_for_nodes.py --resource raykube_control_plane --count 3 --timeout 1200
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any


def nodes_with(nodes: Iterable[Mapping[str, Any]], resource: str) -> list[str]:
    """Ids of the alive nodes among ``ray.nodes()`` entries that offer at least one ``resource``."""
    return [
        str(n["NodeID"])
        for n in nodes
        if n.get("Alive") and float(n.get("Resources", {}).get(resource, 0)) >= 1
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resource", required=True, help="a custom resource of the node type")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds (default 1200)")
    parser.add_argument("--address", default="auto", help="Ray address (default: auto)")
    args = parser.parse_args(argv)

    import ray  # here, so the pure part above imports without Ray

    ray.init(address=args.address, log_to_driver=False, logging_level=logging.ERROR)
    deadline = time.monotonic() + args.timeout
    seen = -1
    while True:
        found = nodes_with(ray.nodes(), args.resource)  # type: ignore[no-untyped-call]
        if len(found) != seen:
            seen = len(found)
            print(f"{seen}/{args.count} alive Ray nodes with {args.resource}", flush=True)
        if seen >= args.count:
            return 0
        if time.monotonic() > deadline:
            print(
                f"error: only {seen} of {args.count} nodes with {args.resource} joined within "
                f"{args.timeout:.0f}s; see why with `ray monitor CLUSTER.yaml` (worker setup errors show "
                "there), then run `ray up CLUSTER.yaml --restart-only` to try again",
                file=sys.stderr,
            )
            return 1
        time.sleep(5)


if __name__ == "__main__":
    sys.exit(main())
