"""An example raykube network plugin: a point-to-point veth per pod, through the CNI reference plugins.

What a Python developer writes to give raykube's pods a network: a ``NetworkPlugin`` subclass with
``add``/``delete``/``check``/``gc`` coroutines. This one hands the work to the reference ``ptp``
plugin (a veth pair per pod, the pod's address on the pod end, a /32 route to it on the host end)
with ``host-local`` IPAM over one subnet, run the way a container runtime runs them
(``netplugins.cni.execproto.run_conflist``). It keeps each attachment's request and result in its
private directory, so CHECK, DEL and GC work without the runtime's cache and after a restart.

Use it (root; Debian's containernetworking-plugins in /usr/lib/cni)::

    # from the repository root, with it on the Ray nodes' Python path (examples/ is not installed):
    PYTHONPATH=$PWD raykube up --network examples.ptp_network:PtpNetwork
    # or alone, with the conformance kit:
    python -m examples.ptp_network --socket /tmp/ptp.sock --subnet 10.99.0.0/28 &
    python -m netplugins.cni.kit --socket /tmp/ptp.sock --capacity 13

Options (``PluginContext.options``): ``subnet`` (default 10.99.0.0/24; a /28 gives 13 pods) and
``cni_path`` (default /usr/lib/cni). Pods reach the node and each other through the node's routes;
this example has no cross-node routing and no hostPort (see netplugins/bridge for both).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from dataclasses import replace
from typing import Any, ClassVar

from netplugins.cni.execproto import DEFAULT_CNI_PATH, run_conflist
from netplugins.cni.plugin import NetworkPlugin, PluginContext
from netplugins.cni.server import serve
from netplugins.cni.types import Attachment, NetRequest, Result, UnknownContainer


def _tolerant(req: NetRequest, prev: Result | None = None) -> NetRequest:
    """The request with ``IgnoreUnknown=1`` (the reference plugins refuse CNI_ARGS they do not know,
    such as K8S_POD_NAME, unless told to ignore them, as kubelet and containerd do)."""
    return replace(req, args={**req.args, "IgnoreUnknown": "1"}, prev_result=prev or req.prev_result)


class PtpNetwork(NetworkPlugin):
    NAME: ClassVar[str] = "ptp-example"

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.subnet = str(ctx.options.get("subnet", "10.99.0.0/24"))
        self.cni_path = str(ctx.options.get("cni_path", DEFAULT_CNI_PATH))
        self.records = os.path.join(ctx.root_dir, "attachments")
        self.conflist: dict[str, Any] = {
            "cniVersion": "1.0.0",
            "name": f"rk-ptp-{ctx.node_name}",
            "plugins": [
                {
                    "type": "ptp",
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": os.path.join(ctx.root_dir, "ipam"),
                    },
                }
            ],
        }

    async def start(self) -> None:
        os.makedirs(self.records, mode=0o700, exist_ok=True)

    # One JSON file per attachment: {"netns", "args", "result"}.
    def _path(self, a: Attachment) -> str:
        return os.path.join(self.records, f"{a.container_id}-{a.ifname}.json")

    def _load(self, a: Attachment) -> NetRequest | None:
        try:
            with open(self._path(a)) as f:
                rec = json.load(f)
        except FileNotFoundError:
            return None
        return NetRequest(
            a.container_id, rec["netns"], a.ifname, rec["args"], {}, Result.from_json(rec["result"])
        )

    def _save(self, req: NetRequest, result: Result) -> None:
        rec = {"netns": req.netns, "args": req.args, "result": result.to_json()}
        with open(self._path(req.attachment), "w") as f:
            json.dump(rec, f)

    async def add(self, req: NetRequest) -> Result:
        result = await run_conflist(self.conflist, "ADD", _tolerant(req), self.cni_path)
        assert result is not None  # run_conflist raises when a plugin prints no result
        self._save(req, result)
        return result

    async def delete(self, req: NetRequest) -> None:
        known = self._load(req.attachment)
        prev = req.prev_result or (known.prev_result if known else None)
        # ptp's DEL releases the address and succeeds when the netns is already gone.
        await run_conflist(self.conflist, "DEL", _tolerant(req, prev), self.cni_path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(req.attachment))

    async def check(self, req: NetRequest) -> None:
        known = self._load(req.attachment)
        if known is None:
            raise UnknownContainer(f"no attachment {req.container_id}/{req.ifname}")
        await run_conflist(self.conflist, "CHECK", _tolerant(req, known.prev_result), self.cni_path)

    async def gc(self, valid: list[Attachment]) -> None:
        keep = set(valid)
        for name in os.listdir(self.records):
            cid, _, ifname = name.removesuffix(".json").rpartition("-")
            if Attachment(cid, ifname) not in keep and (req := self._load(Attachment(cid, ifname))):
                await self.delete(req)


async def _serve(args: argparse.Namespace) -> None:
    ctx = PluginContext(node_name="example", root_dir=args.root, options={"subnet": args.subnet})
    server = await serve(PtpNetwork(ctx), args.socket)
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, done.set)
    print(f"serving {PtpNetwork.NAME} on {args.socket}", flush=True)
    await done.wait()
    await server.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m examples.ptp_network")
    p.add_argument("--socket", required=True)
    p.add_argument("--subnet", default="10.99.0.0/24")
    p.add_argument("--root", default="/tmp/rk-ptp-example", help="the plugin's state directory")
    asyncio.run(_serve(p.parse_args()))
