"""The network benchmark's Service half, the shell: run inside a dedicated node network namespace
(``ip netns exec <node> python -m bench.network_svcrun --plan PLAN.json``), it measures and prints
raw samples as one JSON document (``bench.network_services`` makes the figures).

1. **Programming** (``programming``): the synthetic cluster (``synthetic_cluster``) plus the
   Service ``bench/web`` (its one endpoint: the pod the HTTP part talks to) through
   ``build_table`` and the real ``NftablesBackend`` (``nft -f -`` in this namespace). The first sync
   writes the whole table; ``full_syncs - 1`` more fresh backends replace it whole again. Then
   ``changes`` single-endpoint changes (``change_endpoint``), each timed from the new slices to
   ``sync`` returning: ``build_table`` over all Services, the backend's rendering and diff, and the
   incremental ``nft`` transaction (its own time recorded too). Afterwards the table is checked: the
   ``service-ips`` map holds every Service and the last change's endpoint chain exists. With
   ``iptables_peer`` the same table in kube-proxy's iptables layout goes through
   ``iptables-nft-restore --noflush`` (whole, then a partial restore per change, interleaved with
   ours, alternating who goes first) and is removed before the HTTP part.
2. **DNS** (``dns``): our ``DnsServer`` with a ``DnsIndex`` of the synthetic Services (its own
   process: ``python -m bench.network_svcrun --serve-dns``) and ``dnsmasq`` (our own command line:
   ``--no-daemon --no-resolv --no-hosts --addn-hosts=FILE``, nothing from /etc) on 127.0.0.1 of this
   namespace, each asked A queries for the Services' names by one UDP load generator keeping
   ``concurrency`` queries outstanding, for ``dns_seconds`` per round, the servers alternating.
3. **HTTP** (``http``): a pod nginx (in the pod namespace, ``return 200``) reached directly, through
   the ClusterIP of ``bench/web`` (our nftables DNAT, programmed in step 1) and through the Ingress
   (our nginx renderer and ``NginxProcess`` here, proxying to the pod). Sequential GETs, one
   keep-alive connection or a new connection per request; paths rotated every round.

Invariants: every process started here is stopped before exit, also on failure (and the namespace's
deletion by the caller kills anything left); the nftables table and the iptables chains live in this
namespace only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import selectors
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dnslib import QTYPE, DNSRecord  # type: ignore[import-untyped]

from bench.network_services import (
    CHANGED_BASE,
    HTTP_MODES,
    HTTP_PATHS,
    NAMESPACE,
    TARGET_PORT,
    change_endpoint,
    changed_service,
    dns_names,
    hosts_file,
    iptables_chains,
    iptables_full,
    iptables_partial,
    rule_count,
    service_object,
    slice_object,
    synthetic_cluster,
)
from netplugins.dns.records import DnsIndex
from netplugins.dns.server import DnsServer
from netplugins.ingress.config import NginxSettings, Rendered, render
from netplugins.ingress.model import IngressModel, PathRule, Server, Upstream
from netplugins.ingress.nginx import NginxProcess, nginx_binary
from netplugins.proxy.model import Endpoint as ProxyEndpoint
from netplugins.proxy.model import NodeInfo, ServicePortName, build_table
from netplugins.proxy.nft_backend import NftablesBackend
from netplugins.proxy.nftables import NftOptions, endpoint_chain

ENDPOINTS_PER_SERVICE = 10
DNS_OURS_PORT = 5300
DNS_BASELINE_PORT = 5301
INGRESS_HTTP_PORT = 8081
INGRESS_HTTPS_PORT = 8443
INGRESS_HOST = "web.bench.test"
START_TIMEOUT_S = 30.0
DNS_TIMEOUT_S = 1.0
HTTP_WARMUP = 20


def now() -> int:
    return time.perf_counter_ns()


# ------------------------------------------------------------------------------- 1. programming


class TimedBackend(NftablesBackend):
    """The real backend, recording how long each ``nft`` run took (ns)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.apply_ns: list[int] = []

    async def _apply(self, script: str) -> None:
        t0 = now()
        await super()._apply(script)
        self.apply_ns.append(now() - t0)


def nft(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", *args], capture_output=True, text=True, check=False, timeout=120)


def restore(script: str) -> int:
    """``iptables-nft-restore --noflush`` of ``script``; ns it took."""
    t0 = now()
    proc = subprocess.run(
        ["iptables-nft-restore", "--noflush"], input=script, capture_output=True, text=True, check=False
    )
    took = now() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"iptables-nft-restore: {proc.stderr.strip()[-2000:]}")
    return took


def remove_iptables() -> None:
    """Our nat chains in this namespace go (the namespace holds nothing else in iptables)."""
    for args in (["-t", "nat", "-F"], ["-t", "nat", "-X"]):
        subprocess.run(["iptables-nft", *args], capture_output=True, check=False)
    # iptables-nft leaves its (now empty) "ip nat" table behind; it is ours, in our namespace.
    nft("delete", "table", "ip", "nat")


class Programming:
    """Step 1's state: the Services, their slices as changed so far, our backend, the peer's chains."""

    def __init__(self, plan: dict[str, Any], web: tuple[dict[str, Any], dict[str, Any]]) -> None:
        self.plan = plan
        self.n = int(plan["services"])
        self.services, self.slices = synthetic_cluster(self.n, ENDPOINTS_PER_SERVICE)
        self.web_slice = web[1]
        self.services.append(web[0])
        self.node = NodeInfo("bench-node", (plan["node_ip"],))
        self.options = NftOptions(plan["table"], plan["cluster_cidr"])
        self.backend = TimedBackend(self.options)
        self.peer_on = bool(plan["iptables_peer"])
        self.chains: dict[str, list[str]] = {}
        self.ours: dict[str, Any] = {
            k: [] for k in ("full_ns", "full_nft_ns", "change_ns", "change_nft_ns", "build_table_ns")
        }
        self.ours["change_script_lines"] = []
        self.peer: dict[str, Any] = {"full_ns": [], "change_ns": [], "change_script_lines": []}

    def table(self) -> Any:
        return build_table(self.services, [*self.slices, self.web_slice])

    async def full(self) -> None:
        """A fresh backend's first sync: the whole table written (replaced, when it exists)."""
        self.backend = TimedBackend(self.options)
        t0 = now()
        await self.backend.sync(self.table(), self.node)
        self.ours["full_ns"].append(now() - t0)
        self.ours["full_nft_ns"].append(self.backend.apply_ns[-1])
        self.ours["full_script_lines"] = self.backend.last_script_lines

    def peer_full(self) -> None:
        remove_iptables()
        self.chains = iptables_chains(self.table(), self.plan["cluster_cidr"])
        self.peer["full_ns"].append(restore(iptables_full(self.chains)))
        self.peer["rules"] = rule_count(self.chains)

    async def change(self) -> None:
        """The slices just changed: from them to our incremental transaction applied."""
        t0 = now()
        table = self.table()
        self.ours["build_table_ns"].append(now() - t0)
        await self.backend.sync(table, self.node)
        self.ours["change_ns"].append(now() - t0)
        self.ours["change_nft_ns"].append(self.backend.apply_ns[-1])
        self.ours["change_script_lines"].append(self.backend.last_script_lines)

    def peer_change(self) -> None:
        t0 = now()
        new = iptables_chains(self.table(), self.plan["cluster_cidr"])
        script = iptables_partial(self.chains, new)
        restore(script)
        self.peer["change_ns"].append(now() - t0)
        self.peer["change_script_lines"].append(script.count("\n"))
        self.chains = new

    async def run(self) -> dict[str, Any]:
        for _ in range(self.plan["full_syncs"]):
            await self.full()
            if self.peer_on:
                self.peer_full()
        for k in range(self.plan["changes"]):
            self.slices = change_endpoint(self.slices, k)
            if self.peer_on and k % 2:
                self.peer_change()
            await self.change()
            if self.peer_on and not k % 2:
                self.peer_change()
        self.ours["partial_syncs"] = self.backend.partial_syncs
        self.ours["verified"] = verify(self.plan, self.n)
        out: dict[str, Any] = {"services": self.n, "endpoints_per_service": ENDPOINTS_PER_SERVICE}
        out["ours"] = self.ours
        if self.peer_on:
            remove_iptables()
            self.peer["what"] = (
                "kube-proxy's iptables-mode layout for the same Services (our rendering), "
                "iptables-nft-restore --noflush: whole, then partial restores"
            )
            out["peer"] = self.peer
        return out


def verify(plan: dict[str, Any], n: int) -> bool:
    """The table holds every Service's address and the last change's endpoint chain."""
    table = plan["table"]
    listing = nft("-j", "list", "map", "ip", table, "service-ips")
    if listing.returncode != 0:
        return False
    doc = json.loads(listing.stdout)
    elems = next((m["map"].get("elem", []) for m in doc["nftables"] if "map" in m), [])
    if len(elems) != n + 1:
        return False
    k = plan["changes"] - 1
    if k < 0:
        return True
    name = ServicePortName(NAMESPACE, changed_service(n, k), "http", "TCP")
    chain = endpoint_chain(name, ProxyEndpoint(str(CHANGED_BASE + k + 1), TARGET_PORT))
    return nft("list", "chain", "ip", table, chain).returncode == 0


# ------------------------------------------------------------------------------------ 2. DNS


def serve_dns(services: int, port: int) -> None:
    """``--serve-dns``: our server with the synthetic Services' index on 127.0.0.1:port, until killed."""

    async def main() -> None:
        svcs, slices = synthetic_cluster(services, ENDPOINTS_PER_SERVICE)
        server = DnsServer(DnsIndex.build(svcs, slices), [])
        await server.start("127.0.0.1", port)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def query_templates(names: Sequence[str]) -> list[bytes]:
    return [bytes(DNSRecord.question(name, "A").pack()) for name in names]


def answer_of(addr: tuple[str, int], name: str) -> list[str]:
    packet = DNSRecord.question(name, "A").pack()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(DNS_TIMEOUT_S)
        s.sendto(packet, addr)
        reply = DNSRecord.parse(s.recv(4096))
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)


def wait_dns(addr: tuple[str, int], name: str, proc: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"DNS server on {addr} exited with {proc.returncode}")
        with contextlib.suppress(OSError, TimeoutError):
            if answer_of(addr, name):
                return
        time.sleep(0.05)
    raise RuntimeError(f"DNS server on {addr} does not answer")


def udp_load(
    addr: tuple[str, int], templates: Sequence[bytes], seconds: float, concurrency: int
) -> dict[str, Any]:
    """Keep ``concurrency`` queries outstanding for ``seconds`` (names in turn); per answer its
    latency. A query unanswered after ``DNS_TIMEOUT_S`` counts as lost and is replaced."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(addr)
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    pending: dict[int, int] = {}
    latency: list[int] = []
    lost = errors = 0
    next_id = next_name = 0

    def send() -> None:
        nonlocal next_id, next_name
        while next_id in pending:
            next_id = (next_id + 1) & 0xFFFF
        tmpl = templates[next_name % len(templates)]
        next_name += 1
        pending[next_id] = now()
        sock.send(struct.pack("!H", next_id) + tmpl[2:])
        next_id = (next_id + 1) & 0xFFFF

    cpu0 = time.process_time()
    start = now()
    end = start + int(seconds * 1e9)
    last = start
    try:
        for _ in range(concurrency):
            send()
        while pending:
            if not sel.select(0.1):
                t = now()
                for qid, sent in list(pending.items()):
                    if t - sent > DNS_TIMEOUT_S * 1e9:
                        del pending[qid]
                        lost += 1
                        if t < end:
                            send()
                continue
            while True:
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:
                    raise RuntimeError(f"nothing answers on {addr}") from None
                t = now()
                sent = pending.pop(struct.unpack("!H", data[:2])[0], None)
                if sent is None:
                    continue
                latency.append(t - sent)
                last = t
                if data[3] & 0x0F:
                    errors += 1
                if t < end:
                    send()
    finally:
        sel.close()
        sock.close()
    return {
        "answered": len(latency),
        "seconds": (last - start) / 1e9,
        "client_cpu_s": time.process_time() - cpu0,
        "latency_ns": latency,
        "lost": lost,
        "errors": errors,
    }


@contextlib.contextmanager
def started(argv: Sequence[str], log: Path) -> Iterator[subprocess.Popen[Any]]:
    with open(log, "w") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def dns(plan: dict[str, Any], state: Path) -> dict[str, Any]:
    n = plan["services"]
    services, _ = synthetic_cluster(n, ENDPOINTS_PER_SERVICE)
    names = dns_names(services)
    hosts = state / "dns-hosts"
    hosts.write_text(hosts_file(services))
    ours_addr, base_addr = ("127.0.0.1", DNS_OURS_PORT), ("127.0.0.1", DNS_BASELINE_PORT)
    ours_argv = [sys.executable, "-m", "bench.network_svcrun", "--serve-dns", str(n), str(DNS_OURS_PORT)]
    dnsmasq_argv = [
        "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
        f"--addn-hosts={hosts}", f"--port={DNS_BASELINE_PORT}", "--listen-address=127.0.0.1",
        "--bind-interfaces", "--pid-file=", "--user=root", "--group=root", "--cache-size=10000",
    ]  # fmt: skip
    templates = query_templates(names)
    out: dict[str, Any] = {
        "services": n,
        "concurrency": plan["dns_concurrency"],
        "seconds": plan["dns_seconds"],
        "baseline_what": f"dnsmasq {dnsmasq_version()} answering the same names from --addn-hosts",
        "ours": [],
        "baseline": [],
    }
    with (
        started(ours_argv, state / "dns-ours.log") as ours,
        started(dnsmasq_argv, state / "dnsmasq.log") as base,
    ):
        wait_dns(ours_addr, names[0], ours)
        wait_dns(base_addr, names[0], base)
        sample = names[:: max(1, len(names) // 20)]
        out["same_answers"] = all(answer_of(ours_addr, q) == answer_of(base_addr, q) for q in sample)
        sides = [("ours", ours_addr), ("baseline", base_addr)]
        for _side, addr in sides:  # warm-up, untimed
            udp_load(addr, templates, 0.3, plan["dns_concurrency"])
        for r in range(plan["rounds"]):
            for side, addr in sides if r % 2 == 0 else sides[::-1]:
                out[side].append(udp_load(addr, templates, plan["dns_seconds"], plan["dns_concurrency"]))
    return out


def dnsmasq_version() -> str:
    proc = subprocess.run(["dnsmasq", "--version"], capture_output=True, text=True, check=False)
    first = proc.stdout.splitlines()[0] if proc.stdout else ""
    return first.split()[2] if len(first.split()) > 2 else "?"


# ------------------------------------------------------------------------------------ 3. HTTP


def pod_nginx_conf(prefix: Path) -> Rendered:
    text = (
        "worker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\n"
        "events { worker_connections 1024; }\n"
        "http { access_log off; server { listen 0.0.0.0:%d; keepalive_requests 1000000;\n"
        '  location / { return 200 "hello\\n"; } } }\n' % TARGET_PORT
    )
    return Rendered(text, {})


def netns_nginx(state: Path, netns: str) -> str:
    """A launcher running nginx in ``netns`` (``exec``: the pid NginxProcess sees is nginx's)."""
    path = state / "nginx-in-pod"
    path.write_text(f'#!/bin/sh\nexec ip netns exec {netns} {nginx_binary()} "$@"\n')
    path.chmod(0o700)
    return str(path)


def http_get(addr: tuple[str, int], host: str, sock: socket.socket | None) -> socket.socket | None:
    """One GET; with ``sock`` on it (kept open, returned), else on a new connection closed after."""
    keep = sock is not None
    if sock is None:
        sock = socket.create_connection(addr, timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = "keep-alive" if keep else "close"
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: {conn}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"{addr}: connection closed mid-response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") or b"chunked" in head.lower():
        raise RuntimeError(f"{addr}: not a 200 with a Content-Length: {head!r}")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"{addr}: body cut short")
        body += chunk
    if keep:
        return sock
    sock.close()
    return None


def http_run(addr: tuple[str, int], host: str, mode: str, count: int) -> list[int]:
    samples: list[int] = []
    sock = socket.create_connection(addr, timeout=10) if mode == "keepalive" else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for _ in range(count):
            t0 = now()
            sock = http_get(addr, host, sock)
            samples.append(now() - t0)
    finally:
        if sock is not None:
            sock.close()
    return samples


def http(plan: dict[str, Any], state: Path) -> dict[str, Any]:
    pod_ip, cluster_ip = plan["pod_ip"], plan["web_cluster_ip"]
    targets = {
        "direct": ((pod_ip, TARGET_PORT), "web"),
        "clusterip": ((cluster_ip, 80), "web"),
        "ingress": (("127.0.0.1", INGRESS_HTTP_PORT), INGRESS_HOST),
    }
    samples: dict[str, dict[str, list[int]]] = {p: {m: [] for m in HTTP_MODES} for p in HTTP_PATHS}
    upstream = Upstream("bench-web-80", ((pod_ip, TARGET_PORT),))
    model = IngressModel(
        (Server("", ()), Server(INGRESS_HOST, (PathRule("/", "Prefix", upstream.name, "bench/web"),))),
        (upstream,),
        ("bench/web",),
    )
    settings = NginxSettings(str(state / "ingress"), "127.0.0.1", INGRESS_HTTP_PORT, INGRESS_HTTPS_PORT)

    async def start() -> tuple[NginxProcess, NginxProcess]:
        pod = NginxProcess(state / "pod", binary=netns_nginx(state, plan["pod_netns"]))
        await pod.start(pod_nginx_conf((state / "pod").resolve()))
        ingress = NginxProcess(settings.prefix)
        try:
            await ingress.start(render(model, settings))
        except BaseException:
            await pod.stop()
            raise
        return pod, ingress

    loop = asyncio.new_event_loop()
    pod, ingress = loop.run_until_complete(start())
    try:
        for path in HTTP_PATHS:
            addr, host = targets[path]
            for mode in HTTP_MODES:
                http_run(addr, host, mode, HTTP_WARMUP)
        for r in range(plan["rounds"]):
            order = [HTTP_PATHS[(i + r) % len(HTTP_PATHS)] for i in range(len(HTTP_PATHS))]
            for path in order:
                addr, host = targets[path]
                for mode in HTTP_MODES:
                    samples[path][mode] += http_run(addr, host, mode, plan["http_requests"])
    finally:
        loop.run_until_complete(ingress.stop(5))
        loop.run_until_complete(pod.stop(5))
        loop.close()
    return {
        "requests": plan["http_requests"] * plan["rounds"],
        "rounds": plan["rounds"],
        "what": {
            "direct": f"the pod's nginx at {pod_ip}:{TARGET_PORT} over one veth pair",
            "clusterip": f"{cluster_ip}:80, our nftables DNAT to the pod "
            f"(a table of {plan['services'] + 1} Services)",
            "ingress": "our nginx (rendered Ingress, upstream keep-alive) on 127.0.0.1, proxying to the pod",
        },
        "samples": samples,
    }


# -------------------------------------------------------------------------------------- main


def web_objects(plan: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        service_object("web", plan["web_cluster_ip"], "bench-web"),
        slice_object("web", [plan["pod_ip"]], "bench-web"),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.network_svcrun")
    p.add_argument("--plan", help="the plan (JSON) written by bench.network")
    p.add_argument("--serve-dns", nargs=2, type=int, metavar=("SERVICES", "PORT"))
    args = p.parse_args(argv)
    if args.serve_dns:
        serve_dns(*args.serve_dns)
        return 0
    plan = json.loads(Path(args.plan).read_text())
    state = Path(plan["state"])
    out = {"programming": asyncio.run(Programming(plan, web_objects(plan)).run())}
    out["dns"] = dns(plan, state)
    out["http"] = http(plan, state)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
