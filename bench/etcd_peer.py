"""etcd as the in-run peer of the store benchmark.

``EtcdTarget`` starts Debian's ``etcd`` binary (1 or 3 members) on loopback with fresh temporary
data directories and etcd's default durability (fsync on; ``--unsafe-no-fsync`` is never passed),
and waits until the members agree on a leader (``Maintenance.Status``). The bench then drives it
through ``bench.etcd_bench_client``, the client it drives raykube's store with.

With ``tls`` (the default, as raykube's store serves only TLS) the client port requires a client
certificate (``--client-cert-auth``) and the members talk mutual TLS to each other, with a
throw-away CA and certificates made the way ``raykube up`` makes the store's
(``cluster.store.tls.ensure_store_pki``: EC P-256, the same usages). Each member also serves
``/metrics`` on a plain loopback port (``--listen-metrics-urls``), from which ``fsyncs`` reads
etcd's own count of WAL syncs (``etcd_disk_wal_fsync_duration_seconds_count``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.etcd_bench_client import ClientTLS, find_leader
from cluster.machinery import pki as certutil
from cluster.machinery.files import private_dir
from cluster.store.tls import LOOPBACK_HOSTS, StorePki, ensure_store_pki

ETCD_BINARY_ENV = "RAYKUBE_BENCH_ETCD"  # optional override of the etcd binary path
START_TIMEOUT_S = 40.0
WAL_FSYNCS_METRIC = "etcd_disk_wal_fsync_duration_seconds_count"

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


def free_ports(n: int) -> list[int]:
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


def throwaway_pki(pki_dir: Path) -> StorePki:
    """A fresh CA in ``pki_dir`` and the store's certificates from it, for loopback only."""
    now = datetime.now(UTC)
    ca_cert, ca_key = certutil.new_ca(now)
    pki = StorePki.in_dir(pki_dir)
    private_dir(pki_dir)
    certutil.store_pair(pki.ca_cert, pki.ca_key, ca_cert, ca_key)
    return ensure_store_pki(pki_dir, list(LOOPBACK_HOSTS), now=now)


def wal_fsyncs(metrics_text: str) -> int:
    """etcd's count of WAL syncs in a Prometheus text page (the histogram's ``_count``)."""
    for line in metrics_text.splitlines():
        if line.startswith(WAL_FSYNCS_METRIC + " ") or line.startswith(WAL_FSYNCS_METRIC + "{"):
            return int(float(line.rsplit(" ", 1)[1]))
    raise ValueError(f"{WAL_FSYNCS_METRIC} not in the metrics page")


@dataclass
class _Member:
    name: str
    client_port: int
    peer_port: int
    metrics_port: int
    data_dir: Path
    log_path: Path
    scheme: str
    proc: subprocess.Popen[bytes] | None = None
    log_file: object | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"


class EtcdTarget:
    """A local etcd cluster of 1 or 3 members; ``endpoints`` and ``client_tls`` say how to reach it."""

    name = "etcd"

    def __init__(self, members: int = 1, *, tls: bool = True, data_root: str | None = None):
        if members not in (1, 3):
            raise ValueError(f"etcd members must be 1 or 3, not {members}")
        self.replicas = members
        self.tls = tls
        self._data_root = data_root
        self._tmp: Path | None = None
        self._members: list[_Member] = []
        self.client_tls: ClientTLS | None = None
        self.leader_name: str | None = None

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self._members]

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

    def _security_args(self) -> list[str]:
        if self._tmp is None or not self.tls:
            return []
        pki = throwaway_pki(self._tmp / "pki")
        self.client_tls = ClientTLS.from_files(pki.ca_cert, pki.etcdctl_cert, pki.etcdctl_key)
        return [
            "--cert-file", str(pki.server_cert),
            "--key-file", str(pki.server_key),
            "--trusted-ca-file", str(pki.ca_cert),
            "--client-cert-auth",
            "--peer-cert-file", str(pki.peer_cert),
            "--peer-key-file", str(pki.peer_key),
            "--peer-trusted-ca-file", str(pki.ca_cert),
            "--peer-client-cert-auth",
        ]  # fmt: skip

    async def _start_once(self, binary: str) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="raykube-bench-etcd-", dir=self._data_root))
        _LIVE.add(self)
        security = self._security_args()
        ports = free_ports(3 * self.replicas)
        scheme = "https" if self.tls else "http"
        self._members = [
            _Member(
                name=f"m{i}",
                client_port=ports[3 * i],
                peer_port=ports[3 * i + 1],
                metrics_port=ports[3 * i + 2],
                data_dir=self._tmp / f"m{i}.etcd",
                log_path=self._tmp / f"m{i}.log",
                scheme=scheme,
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
                "--listen-metrics-urls", f"http://127.0.0.1:{m.metrics_port}",
                "--initial-cluster", initial_cluster,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", token,
                "--logger", "zap",
                "--log-outputs", "stderr",
                "--log-level", "warn",
                *security,
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
        leader = asyncio.create_task(find_leader(self.endpoints, self.client_tls, START_TIMEOUT_S))
        try:
            while not leader.done():
                for m in self._members:
                    rc = m.proc.poll() if m.proc else None
                    if rc is not None:
                        raise RuntimeError(f"etcd member {m.name} exited with code {rc}: {self._log_tail(m)}")
                await asyncio.wait([leader], timeout=0.2)
            endpoint, _ = leader.result()
        finally:
            leader.cancel()
        self.leader_name = next(m.name for m in self._members if m.endpoint == endpoint)

    def _log_tail(self, m: _Member, n: int = 800) -> str:
        try:
            return m.log_path.read_bytes()[-n:].decode(errors="replace").strip()
        except OSError:
            return "(no log)"

    async def fsyncs(self) -> int | None:
        """WAL syncs over all members, as etcd counts them (``WAL_FSYNCS_METRIC``)."""

        def read(port: int) -> int:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                return wal_fsyncs(resp.read().decode())

        counts = await asyncio.gather(*(asyncio.to_thread(read, m.metrics_port) for m in self._members))
        return sum(counts)

    async def close(self) -> None:
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
        self.client_tls = None
        _LIVE.discard(self)


@atexit.register
def _cleanup_at_exit() -> None:
    for t in list(_LIVE):
        t._stop_processes()
