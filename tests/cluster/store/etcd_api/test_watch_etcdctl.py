"""The real etcdctl 3.4 watching a replica: ``watch`` with ``--prefix``, ``--rev``, ``--prev-kv``,
a compacted start revision, and ``watch -i`` with its ``progress`` command."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from cluster.store.etcd_api.backend import ReplicaBackend
from cluster.store.etcd_api.watch import WatchServicer
from cluster.store.mvcc import CompactOp, DeleteRangeOp
from tests.capabilities import needs
from tests.cluster.store.etcd_api.cluster import LocalCluster
from tests.cluster.store.etcd_api.test_watch import put, run, served

ETCDCTL = "/usr/bin/etcdctl"
needs_etcdctl = needs("etcd", None if Path(ETCDCTL).exists() else f"etcdctl is not installed at {ETCDCTL}")


class Etcdctl:
    """One running etcdctl, its stdout read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, address: str, *args: str, stdin: bool = False) -> Etcdctl:
        proc = await asyncio.create_subprocess_exec(
            ETCDCTL,
            f"--endpoints={address}",
            "--dial-timeout=5s",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        return cls(proc)

    async def lines(self, n: int, timeout: float = 15.0) -> list[str]:
        assert self.proc.stdout is not None
        out = []
        for _ in range(n):
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            assert line, f"etcdctl ended: {await self.stderr()}"
            out.append(line.decode().rstrip("\n"))
        return out

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stderr(self) -> str:
        assert self.proc.stderr is not None
        if self.proc.returncode is None:
            self.proc.kill()
        return (await self.proc.stderr.read()).decode()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


async def _watch_lines(b: ReplicaBackend, addr: str, servicer: WatchServicer) -> None:
    for i in range(3):
        await put(b, b"/k/%d" % i, b"v%d" % i)  # revisions 2..4
    ctl = await Etcdctl.start(addr, "watch", "--prefix", "/k/", "--rev", "3")
    try:
        assert await ctl.lines(6) == ["PUT", "/k/1", "v1", "PUT", "/k/2", "v2"]
        await put(b, b"/k/9", b"live")
        await b.write(DeleteRangeOp(b"/k/1"))
        assert await ctl.lines(5) == ["PUT", "/k/9", "live", "DELETE", "/k/1"]
    finally:
        await ctl.stop()
    await _until(lambda: servicer.feed.watchers() == 0)  # the server saw that etcdctl left
    prev = await Etcdctl.start(addr, "watch", "--prev-kv", "/k/2")
    try:
        await _until(lambda: servicer.feed.watchers() == 1)  # etcdctl prints nothing on "created"
        await put(b, b"/k/2", b"new")
        assert await prev.lines(5) == ["PUT", "/k/2", "v2", "/k/2", "new"]
    finally:
        await prev.stop()


@needs_etcdctl
def test_etcdctl_watch_prefix_rev_prev_kv(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        async with served(b) as (addr, servicer):
            await _watch_lines(b, addr, servicer)

    run(tmp_path, scenario)


@needs_etcdctl
def test_etcdctl_watch_compacted_and_interactive_progress(tmp_path: Path) -> None:
    async def scenario(c: LocalCluster) -> None:
        b = await c.leader()
        for i in range(5):
            await put(b, b"/c", b"%d" % i)  # 2..6
        await b.write(CompactOp(4))
        async with served(b) as (addr, servicer):
            ctl = await Etcdctl.start(addr, "watch", "--rev", "2", "/c")
            code = await asyncio.wait_for(ctl.proc.wait(), 15)
            err = await ctl.stderr()
            assert code != 0
            assert "watch was canceled (etcdserver: mvcc: required revision has been compacted)" in err, err
            # from the compact revision on it works, as with etcd
            ok = await Etcdctl.start(addr, "watch", "--rev", "4", "/c")  # the compact revision itself
            try:
                assert await ok.lines(9) == ["PUT", "/c", "2", "PUT", "/c", "3", "PUT", "/c", "4"]
            finally:
                await ok.stop()
            # interactive: a watch, then "progress" asks the stream for its revision
            inter = await Etcdctl.start(addr, "watch", "-i", stdin=True)
            try:
                await inter.send("watch /c")
                await _until(lambda: servicer.feed.watchers() == 1)
                await inter.send("progress")
                assert await inter.lines(1) == ["progress notify: 6"]
                await put(b, b"/c", b"after")
                assert await inter.lines(3) == ["PUT", "/c", "after"]
                await inter.send("progress")
                assert await inter.lines(1) == ["progress notify: 7"]
            finally:
                await inter.stop()

    run(tmp_path, scenario)


async def _until(cond: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
