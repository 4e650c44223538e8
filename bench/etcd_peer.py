"""etcd as the in-run peer of the store benchmark.

``EtcdTarget`` starts Debian's ``etcd`` binary (1 or 3 members) on loopback
with fresh temporary data directories and etcd's default durability (fsync
on; ``--unsafe-no-fsync`` is never passed), waits until the cluster has a
leader and serves linearizable reads, and then sends puts to the leader over
gRPC (``grpc.aio``) with the minimal stubs in ``bench/_etcd_proto``.

Connections: a fixed pool of ``conns`` channels (default 4) to the leader,
used round-robin, one channel per put call. With 64 clients that is 16
clients per HTTP/2 connection, roughly what etcd's own ``benchmark`` tool is
run with in etcd's published performance docs (many clients per connection).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench._etcd_proto import etcd_kv_pb2, etcd_kv_pb2_grpc

ETCD_BINARY_ENV = "RAYKUBE_BENCH_ETCD"  # optional override of the etcd binary path
DEFAULT_CONNS = 4
PUT_TIMEOUT_S = 30.0
START_TIMEOUT_S = 40.0

# Processes and directories still to clean up if the interpreter exits without close().
_LIVE: set[EtcdTarget] = set()


def etcd_binary() -> str | None:
    """Path of the etcd binary to use, or None if there is none."""
    override = os.environ.get(ETCD_BINARY_ENV)
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which("etcd")


def etcd_version(binary: str | None = None) -> str | None:
    binary = binary or etcd_binary()
    if not binary:
        return None
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.lower().startswith("etcd version:"):
            return line.split(":", 1)[1].strip()
    return out.strip() or None


def _free_ports(n: int) -> list[int]:
    """Ask the kernel for n distinct free loopback ports (sockets held open together)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class _Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log_file: object | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.client_port}"


class EtcdTarget:
    """A local etcd cluster of 1 or 3 members, driven through the gRPC KV API."""

    name = "etcd"

    def __init__(self, members: int = 1, *, conns: int = DEFAULT_CONNS, data_root: str | None = None):
        if members not in (1, 3):
            raise ValueError(f"etcd members must be 1 or 3, not {members}")
        self.replicas = members
        self.conns = max(1, conns)
        self._data_root = data_root
        self._tmp: Path | None = None
        self._members: list[_Member] = []
        self._channels: list[object] = []
        self._stubs: list[object] = []
        self._rr: itertools.cycle[object] | None = None
        self._pb2: object | None = None
        self.leader_name: str | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("etcd binary not found (apt-get install etcd-server)")
        last_error: Exception | None = None
        for _attempt in range(2):  # a second try covers a lost race for a "free" port
            try:
                await self._start_once(binary)
                return
            except Exception as e:  # reported to the caller below
                last_error = e
                await self.close()
        assert last_error is not None
        raise last_error

    async def _start_once(self, binary: str) -> None:
        self._pb2 = etcd_kv_pb2
        self._tmp = Path(tempfile.mkdtemp(prefix="raykube-bench-etcd-", dir=self._data_root))
        _LIVE.add(self)
        ports = _free_ports(2 * self.replicas)
        self._members = [
            _Member(
                name=f"m{i}",
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
                data_dir=self._tmp / f"m{i}.etcd",
                log_path=self._tmp / f"m{i}.log",
            )
            for i in range(self.replicas)
        ]
        initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self._members)
        token = f"raykube-bench-{os.getpid()}-{time.monotonic_ns()}"
        for m in self._members:
            args = [
                binary,
                "--name", m.name,
                "--data-dir", str(m.data_dir),
                "--listen-client-urls", m.client_url,
                "--advertise-client-urls", m.client_url,
                "--listen-peer-urls", m.peer_url,
                "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", initial_cluster,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", token,
                "--logger", "zap",
                "--log-outputs", "stderr",
                "--log-level", "warn",
            ]  # fmt: skip
            m.log_file = open(m.log_path, "wb")  # noqa: SIM115 - closed in close()
            # Own session: a terminal Ctrl-C reaches us, and we stop etcd in close().
            m.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=m.log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        await self._wait_ready(grpc)
        leader = self._leader_member
        self._channels = [grpc.aio.insecure_channel(leader.target) for _ in range(self.conns)]
        self._stubs = [etcd_kv_pb2_grpc.KVStub(ch) for ch in self._channels]
        self._rr = itertools.cycle(self._stubs)
        # One real put through the pool proves the write path end to end.
        await self.put(b"\x00raykube-bench-probe", b"ok")

    async def _wait_ready(self, grpc: object) -> None:
        """Wait until every member answers a linearizable Range and all agree on one leader."""
        pb2 = self._pb2
        deadline = time.monotonic() + START_TIMEOUT_S
        channels = [grpc.aio.insecure_channel(m.target) for m in self._members]  # type: ignore[attr-defined]
        try:
            kv = [etcd_kv_pb2_grpc.KVStub(ch) for ch in channels]
            maint = [etcd_kv_pb2_grpc.MaintenanceStub(ch) for ch in channels]
            last = "no answer yet"
            while True:
                for m in self._members:
                    rc = m.proc.poll() if m.proc else None
                    if rc is not None:
                        raise RuntimeError(f"etcd member {m.name} exited with code {rc}: {self._log_tail(m)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"etcd cluster not ready after {START_TIMEOUT_S:.0f}s ({last})")
                try:
                    ids: list[int] = []
                    leaders: set[int] = set()
                    for i in range(len(self._members)):
                        await kv[i].Range(pb2.RangeRequest(key=b"health"), timeout=2.0)  # type: ignore[attr-defined]
                        st = await maint[i].Status(pb2.StatusRequest(), timeout=2.0)  # type: ignore[attr-defined]
                        ids.append(st.header.member_id)
                        leaders.add(st.leader)
                    if len(leaders) == 1 and (lid := leaders.pop()) in ids:
                        self.leader_name = self._members[ids.index(lid)].name
                        return
                    last = f"members disagree on the leader: {sorted(leaders)}"
                except Exception as e:  # keep polling until the deadline
                    details = e.details() if hasattr(e, "details") else e
                    last = f"{type(e).__name__}: {details}"
                await asyncio.sleep(0.1)
        finally:
            for ch in channels:
                await ch.close()

    @property
    def _leader_member(self) -> _Member:
        return next(m for m in self._members if m.name == self.leader_name)

    def _log_tail(self, m: _Member, n: int = 800) -> str:
        try:
            return m.log_path.read_bytes()[-n:].decode(errors="replace").strip()
        except OSError:
            return "(no log)"

    async def put(self, key: bytes, value: bytes) -> None:
        assert self._rr is not None, "start() first"
        await next(self._rr).Put(self._pb2.PutRequest(key=key, value=value), timeout=PUT_TIMEOUT_S)  # type: ignore[attr-defined]

    async def counters(self) -> dict[str, int | None]:
        """The cluster's revision (a linearizable count-only Range); etcd's fsyncs are not counted (None)."""
        assert self._rr is not None, "start() first"
        req = self._pb2.RangeRequest(key=b"\x00", count_only=True)  # type: ignore[attr-defined]
        resp = await next(self._rr).Range(req, timeout=PUT_TIMEOUT_S)  # type: ignore[attr-defined]
        return {"revision": int(resp.header.revision), "fsyncs": None}

    async def close(self) -> None:
        channels, self._channels, self._stubs, self._rr = self._channels, [], [], None
        for ch in channels:
            with contextlib.suppress(Exception):
                await ch.close()  # type: ignore[attr-defined]
        self._stop_processes()

    def _stop_processes(self) -> None:
        """Synchronous, idempotent: stop the members and remove the temp dir."""
        procs = [m.proc for m in self._members if m.proc is not None]
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for m in self._members:
            m.proc = None
            if m.log_file is not None:
                m.log_file.close()  # type: ignore[attr-defined]
                m.log_file = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._members = []
        _LIVE.discard(self)


@atexit.register
def _cleanup_at_exit() -> None:
    for t in list(_LIVE):
        t._stop_processes()
