"""raykube's CNI conformance kit: sequences any network plugin's socket must pass.

Run it against a served plugin: ``python -m netplugins.cni.kit --socket S [--capacity N] [--json]``
(root: the kit makes network namespaces), or import it (``run_kit``, ``CASES``, ``run_case``) as the
pytest wiring in tests/netplugins/cni_kit does.

The cases (``CASES``, in order): VERSION; STATUS ok; ADD gives an IP and the interface exists in
the netns; CHECK after ADD passes; DEL then CHECK fails; DEL twice; DEL of an unknown container;
ADD into a netns that is gone fails with a CNI error (not a hang); DEL with a gone netns; parallel
ADDs give distinct IPs; address exhaustion (needs ``capacity``, the number of pod addresses the
plugin can hand out: ADD that many succeed, one more fails, a DEL frees one); GC with an empty
list releases everything (and keeps what a valid list names); cleanup (no netns of the kit is left).

A plugin that says ``node_network`` in VERSION (pods share the node's namespace, e.g. ``host``) is
given the kit's own network namespace as every pod's, the interface and gone-netns checks do not
apply to it and its pods may share the node's address; the report says which checks were left out.

Invariants: every namespace the kit makes is ``rkkit-<run>-<n>`` and is deleted when its case ends,
pass or fail; each case DELs every attachment it ADDed (so cases are independent); a case's
failure is reported, never raised, so one broken behaviour does not hide the others. The kit GCs
with an empty valid list: run it only against a plugin serving no real pods.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from netplugins.cni.client import CNIClient, VersionInfo
from netplugins.cni.types import Attachment, CNIError, NetRequest, Result, TryAgainLater

PASS, FAIL, SKIP = "pass", "fail", "skip"
NETNS_DIR = "/var/run/netns"


class CaseFailed(AssertionError):
    """A conformance check did not hold (the message says which)."""


class CaseSkipped(Exception):
    """The case does not apply to this plugin or run (the message says why)."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    outcome: str  # PASS, FAIL or SKIP
    detail: str = ""
    seconds: float = 0.0


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise CaseFailed(msg)


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


@dataclass
class Kit:
    """One kit run against one socket: the client, the namespaces and attachments a case made."""

    socket: str
    capacity: int | None = None  # pod addresses the plugin can hand out; None: exhaustion is skipped
    parallel: int = 8
    timeout: float = 30.0
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    version: VersionInfo | None = None
    notes: list[str] = field(default_factory=list)
    _n: int = 0
    _netns: list[str] = field(default_factory=list)
    _added: dict[Attachment, NetRequest] = field(default_factory=dict)
    _cni: CNIClient | None = None

    @property
    def cni(self) -> CNIClient:
        assert self._cni is not None, "use the kit inside `async with kit.session()`"
        return self._cni

    @property
    def node_network(self) -> bool:
        return bool(self.version and self.version.node_network)

    # ------------------------------------------------------------------------------ namespaces

    def new_netns(self) -> str:
        """Make ``rkkit-<run>-<n>``; returns its path. Deleted when the case ends."""
        self._n += 1
        name = f"rkkit-{self.run_id}-{self._n}"
        r = _ip("netns", "add", name)
        if r.returncode != 0:
            raise CaseFailed(f"ip netns add {name} failed: {r.stderr.strip()}")
        self._netns.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return os.path.join(NETNS_DIR, name)

    def remove_netns(self, path: str) -> None:
        name = os.path.basename(path)
        _ip("netns", "del", name)
        if name in self._netns:
            self._netns.remove(name)

    def leftover_netns(self) -> list[str]:
        try:
            names = os.listdir(NETNS_DIR)
        except OSError:
            return []
        return sorted(n for n in names if n.startswith(f"rkkit-{self.run_id}-"))

    # ------------------------------------------------------------------------------ requests

    def request(self, netns: str | None = None, container_id: str = "") -> NetRequest:
        """A pod's request; a node-network plugin's pods get the kit's own namespace."""
        cid = container_id or f"rkkit{self.run_id}{secrets.token_hex(8)}"
        if netns is None:
            netns = f"/proc/{os.getpid()}/ns/net" if self.node_network else self.new_netns()
        # IgnoreUnknown=1 as containerd and kubelet send it (the reference plugins need it).
        args = {
            "IgnoreUnknown": "1",
            "K8S_POD_NAMESPACE": "rkkit",
            "K8S_POD_NAME": cid[-12:],
            "K8S_POD_INFRA_CONTAINER_ID": cid,
        }
        return NetRequest(container_id=cid, netns=netns, ifname="eth0", args=args)

    async def add(self, req: NetRequest) -> tuple[NetRequest, Result]:
        """ADD, remembering the attachment for the case's cleanup; returns the request with its result
        as ``prev_result`` (what a runtime passes to CHECK and DEL)."""
        self._added[req.attachment] = req
        result = await self.cni.add(req, timeout=self.timeout)
        done = NetRequest(req.container_id, req.netns, req.ifname, req.args, req.runtime_config, result)
        self._added[req.attachment] = done
        return done, result

    async def delete(self, req: NetRequest) -> None:
        await self.cni.delete(req, timeout=self.timeout)
        self._added.pop(req.attachment, None)

    def forget(self, req: NetRequest) -> None:
        """The attachment is released some other way (GC)."""
        self._added.pop(req.attachment, None)

    async def end_case(self) -> list[str]:
        """DEL what the case left attached, delete its namespaces; returns what went wrong."""
        problems = []
        for req in list(self._added.values()):
            try:
                await self.cni.delete(req, timeout=self.timeout)
            except CNIError as e:
                problems.append(f"cleanup DEL {req.container_id} failed: {e}")
        self._added.clear()
        for name in list(self._netns):
            self.remove_netns(os.path.join(NETNS_DIR, name))
        return problems

    # ------------------------------------------------------------------------------ checks

    def check_attached(self, req: NetRequest, result: Result) -> None:
        """The result has an IP and, unless the plugin uses the node's network, the interface is in
        the namespace with that address."""
        ips = result.pod_ips()
        check(bool(ips), f"ADD result has no IP: {result.to_json()}")
        if self.node_network:
            return
        name = os.path.basename(req.netns)
        r = _ip("-j", "-n", name, "addr", "show", "dev", req.ifname)
        check(r.returncode == 0, f"interface {req.ifname} not in netns {name}: {r.stderr.strip()}")
        have = {a["local"] for link in json.loads(r.stdout or "[]") for a in link.get("addr_info", [])}
        check(set(ips) <= have, f"{req.ifname} in {name} has {sorted(have)}, the result says {ips}")


async def _expect_cni_error(kit: Kit, what: str, call: Awaitable[Any]) -> CNIError:
    try:
        await call
    except TryAgainLater as e:
        if "did not answer in time" in e.msg:
            raise CaseFailed(f"{what}: the plugin hung (no answer in {kit.timeout}s)") from e
        return e
    except CNIError as e:
        return e
    raise CaseFailed(f"{what} succeeded; a CNI error was expected")


# ---------------------------------------------------------------------------------------- cases


async def case_version(kit: Kit) -> None:
    v = kit.version
    assert v is not None
    check(bool(v.plugin), "VERSION names no plugin")
    check(v.cni_version in v.supported_versions, f"{v.cni_version} not in {v.supported_versions}")
    check("1.0.0" in v.supported_versions, f"1.0.0 (containerd 1.6) not supported: {v.supported_versions}")


async def case_status(kit: Kit) -> None:
    await kit.cni.status(timeout=kit.timeout)


async def case_add(kit: Kit) -> None:
    req, result = await kit.add(kit.request())
    kit.check_attached(req, result)


async def case_check_after_add(kit: Kit) -> None:
    req, _ = await kit.add(kit.request())
    await kit.cni.check(req, timeout=kit.timeout)


async def case_del_then_check_fails(kit: Kit) -> None:
    req, _ = await kit.add(kit.request())
    await kit.delete(req)
    await _expect_cni_error(kit, "CHECK after DEL", kit.cni.check(req, timeout=kit.timeout))


async def case_del_twice(kit: Kit) -> None:
    req, _ = await kit.add(kit.request())
    await kit.delete(req)
    await kit.delete(req)


async def case_del_unknown_container(kit: Kit) -> None:
    missing = os.path.join(NETNS_DIR, f"rkkit-{kit.run_id}-never")
    await kit.cni.delete(kit.request(netns=missing), timeout=kit.timeout)


async def case_add_gone_netns(kit: Kit) -> None:
    if kit.node_network:
        raise CaseSkipped("node_network plugin: pods have no namespace of their own")
    req = kit.request()
    kit.remove_netns(req.netns)
    kit._added[req.attachment] = req  # a failed ADD may still have taken an address: DEL it after
    err = await _expect_cni_error(kit, "ADD into a deleted netns", kit.cni.add(req, timeout=kit.timeout))
    kit.notes.append(f"add_gone_netns: error {err.code}: {err.msg}")


async def case_del_gone_netns(kit: Kit) -> None:
    if kit.node_network:
        raise CaseSkipped("node_network plugin: pods have no namespace of their own")
    req, _ = await kit.add(kit.request())
    kit.remove_netns(req.netns)
    await kit.delete(req)


async def case_parallel_adds(kit: Kit) -> None:
    reqs = [kit.request() for _ in range(kit.parallel)]
    done = await asyncio.gather(*(kit.add(r) for r in reqs), return_exceptions=True)
    errors = [d for d in done if isinstance(d, BaseException)]
    check(not errors, f"{len(errors)} of {kit.parallel} parallel ADDs failed: {errors[0] if errors else ''}")
    results = [d for d in done if not isinstance(d, BaseException)]
    for req, result in results:
        kit.check_attached(req, result)
    ips = [ip for _, result in results for ip in result.pod_ips()]
    if kit.node_network:
        kit.notes.append(
            "parallel_adds: node_network pods share the node's address (distinctness not checked)"
        )
        return
    check(len(set(ips)) == len(ips), f"parallel ADDs gave duplicate IPs: {sorted(ips)}")


async def case_exhaustion(kit: Kit) -> None:
    if kit.capacity is None:
        raise CaseSkipped("the kit was not told the plugin's address capacity (--capacity N)")
    reqs = []
    for _ in range(kit.capacity):
        req, _ = await kit.add(kit.request())
        reqs.append(req)
    extra = kit.request()
    err = await _expect_cni_error(
        kit, f"ADD number {kit.capacity + 1} in a pool of {kit.capacity}", kit.add(extra)
    )
    kit.notes.append(f"exhaustion: error {err.code}: {err.msg}")
    await kit.delete(extra)  # the failed ADD must be deletable
    await kit.delete(reqs.pop())
    again, result = await kit.add(kit.request())
    kit.check_attached(again, result)


async def case_gc(kit: Kit) -> None:
    keep, _ = await kit.add(kit.request())
    drop, _ = await kit.add(kit.request())
    await kit.cni.gc([keep.attachment], timeout=kit.timeout)
    kit.forget(drop)
    await kit.cni.check(keep, timeout=kit.timeout)  # GC must not touch a valid attachment
    n = kit.capacity if kit.capacity is not None else 4
    taken = [keep] + [(await kit.add(kit.request()))[0] for _ in range(n - 1)]
    await kit.cni.gc([], timeout=kit.timeout)
    for req in taken:
        kit.forget(req)
    for _ in range(n):  # with a known capacity, this only fits when GC released every address
        req, result = await kit.add(kit.request())
        kit.check_attached(req, result)


async def case_cleanup(kit: Kit) -> None:
    left = kit.leftover_netns()
    check(not left, f"network namespaces of the kit left behind: {left}")


Case = Callable[[Kit], Awaitable[None]]
CASES: dict[str, Case] = {
    "version": case_version,
    "status": case_status,
    "add": case_add,
    "check_after_add": case_check_after_add,
    "del_then_check_fails": case_del_then_check_fails,
    "del_twice": case_del_twice,
    "del_unknown_container": case_del_unknown_container,
    "add_gone_netns": case_add_gone_netns,
    "del_gone_netns": case_del_gone_netns,
    "parallel_adds": case_parallel_adds,
    "exhaustion": case_exhaustion,
    "gc": case_gc,
    "cleanup": case_cleanup,
}


async def run_case(kit: Kit, name: str) -> CaseResult:
    """Run one case (the kit's session must be open); never raises for a failed check."""
    start = time.monotonic()
    outcome, detail = PASS, ""
    try:
        await CASES[name](kit)
    except CaseSkipped as e:
        outcome, detail = SKIP, str(e)
    except (CaseFailed, CNIError) as e:
        outcome, detail = FAIL, str(e)
    except Exception as e:
        outcome, detail = FAIL, f"{type(e).__name__}: {e}"
    problems = await kit.end_case()
    if problems and outcome != FAIL:
        outcome, detail = FAIL, "; ".join(problems)
    return CaseResult(name, outcome, detail, time.monotonic() - start)


class _Session:
    def __init__(self, kit: Kit) -> None:
        self.kit = kit

    async def __aenter__(self) -> Kit:
        self.kit._cni = CNIClient(self.kit.socket, timeout=self.kit.timeout)
        self.kit.version = await self.kit._cni.wait_ready(timeout=self.kit.timeout)
        return self.kit

    async def __aexit__(self, *exc: object) -> None:
        await self.kit.end_case()
        if self.kit._cni is not None:
            await self.kit._cni.close()
            self.kit._cni = None


def session(kit: Kit) -> _Session:
    """``async with session(kit):`` connects (waiting until VERSION answers) and closes."""
    return _Session(kit)


async def run_kit(
    socket: str, *, capacity: int | None = None, parallel: int = 8, only: list[str] | None = None
) -> tuple[list[CaseResult], Kit]:
    """Every case (or ``only`` those) in order against ``socket``."""
    kit = Kit(socket, capacity=capacity, parallel=parallel)
    async with session(kit):
        results = [await run_case(kit, name) for name in (only or list(CASES))]
    return results, kit


def report(results: list[CaseResult], kit: Kit) -> str:
    v = kit.version
    head = f"CNI kit against {kit.socket}" + (
        f": plugin {v.plugin!r}, CNI {v.cni_version}, node_network={v.node_network}" if v else ""
    )
    lines = [head]
    for r in results:
        lines.append(f"  {r.outcome.upper():4}  {r.name:24} {r.seconds:6.2f}s  {r.detail}".rstrip())
    lines += [f"  note: {n}" for n in kit.notes]
    counts = {o: sum(r.outcome == o for r in results) for o in (PASS, FAIL, SKIP)}
    lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netplugins.cni.kit", description=__doc__.split("\n")[0])
    p.add_argument("--socket", required=True, help="the network plugin's unix socket")
    p.add_argument("--capacity", type=int, help="pod addresses the plugin can hand out (exhaustion case)")
    p.add_argument("--parallel", type=int, default=8, help="parallel ADDs (default 8)")
    p.add_argument("--case", action="append", choices=list(CASES), help="run only these cases")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    results, kit = asyncio.run(
        run_kit(args.socket, capacity=args.capacity, parallel=args.parallel, only=args.case)
    )
    if args.json:
        print(
            json.dumps(
                {
                    "socket": kit.socket,
                    "plugin": kit.version.plugin if kit.version else "",
                    "node_network": kit.node_network,
                    "cases": [
                        {
                            "name": r.name,
                            "outcome": r.outcome,
                            "detail": r.detail,
                            "seconds": round(r.seconds, 3),
                        }
                        for r in results
                    ],
                    "notes": kit.notes,
                },
                indent=2,
            )
        )
    else:
        print(report(results, kit))
    return 1 if any(r.outcome == FAIL for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
