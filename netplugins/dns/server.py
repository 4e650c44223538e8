"""The cluster DNS server: UDP and TCP on one address and port, answering from a :class:`DnsIndex`.

Each query is answered from the current index (``server.index``, replaced whole by the caller when
the cluster changes) when the name is the cluster's (``DnsIndex.lookup`` says so); anything else is
forwarded, as received, to the node's upstream resolvers in order until one answers (over the
transport the client used), and the upstream's answer is relayed unchanged (a truncated one too: the
client retries over TCP, and so does the forward). An ExternalName CNAME pointing outside the zone
is followed by forwarding the target. No upstream answering: SERVFAIL.

UDP answers larger than the client's limit (512 bytes, or its EDNS payload size up to 4096) go back
truncated: header with TC set and the question, no records, so the client retries over TCP. Over TCP
a connection may carry several length-prefixed queries. A malformed query gets FORMERR when its
header is readable and is dropped otherwise; opcodes other than QUERY get NOTIMP.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from dnslib import (  # type: ignore[import-untyped]
    AAAA,
    CNAME,
    PTR,
    QTYPE,
    RCODE,
    RR,
    SOA,
    SRV,
    TXT,
    A,
    DNSError,
    DNSHeader,
    DNSRecord,
)

from netplugins.dns.records import DnsIndex, Record, Soa, Srv

log = logging.getLogger("raykube.dns")

UDP_LIMIT = 512
EDNS_LIMIT = 4096
FORWARD_TIMEOUT = 2.0


# -- upstreams ------------------------------------------------------------------------------------


def upstreams_from_resolv_conf(text: str, skip: Iterable[str] = ()) -> list[str]:
    """The nameservers of a resolv.conf, without ``skip`` (our own addresses: no forwarding loops)."""
    skipped = {str(ipaddress.ip_address(s)) for s in skip}
    out = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                address = str(ipaddress.ip_address(fields[1].split("%", 1)[0]))
            except ValueError:
                continue
            if address not in skipped and address not in out:
                out.append(address)
    return out


def parse_upstream(entry: str) -> tuple[str, int]:
    """``1.2.3.4``, ``1.2.3.4:5353``, ``[fd00::1]:5353`` or ``fd00::1`` -> (host, port)."""
    if entry.startswith("["):
        host, _, port = entry[1:].partition("]:")
        return host.rstrip("]"), int(port or 53)
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, int(port)
    return entry, 53


# -- index answers to dnslib records --------------------------------------------------------------


def _rdata(record: Record) -> Any:
    data = record.data
    if isinstance(data, Srv):
        return SRV(data.priority, data.weight, data.port, data.target + ".")
    if isinstance(data, Soa):
        return SOA(
            data.mname + ".",
            data.rname + ".",
            (data.serial, data.refresh, data.retry, data.expire, data.minimum),
        )
    kinds = {"A": A, "AAAA": AAAA, "TXT": TXT}
    if record.rtype in kinds:
        return kinds[record.rtype](data)
    return {"CNAME": CNAME, "PTR": PTR}[record.rtype](data + ".")


def to_rr(record: Record) -> RR:
    return RR(record.name + ".", getattr(QTYPE, record.rtype), ttl=record.ttl, rdata=_rdata(record))


def udp_limit(request: DNSRecord) -> int:
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return int(max(UDP_LIMIT, min(int(rr.rclass), EDNS_LIMIT)))
    return UDP_LIMIT


def truncated(reply: DNSRecord) -> DNSRecord:
    """``reply`` cut to its header (TC set) and question."""
    header = DNSHeader(id=reply.header.id, bitmap=reply.header.bitmap, tc=1)
    return DNSRecord(header, q=reply.q)


def _error(data: bytes, rcode: int) -> bytes | None:
    """A reply with only a header and ``rcode`` to an unparseable query, or None (drop it)."""
    if len(data) < 12:
        return None
    ident, flags = struct.unpack("!HH", data[:4])
    flags = (flags | 0x8000) & 0xFFF0 | rcode  # QR set, opcode and RD kept, RCODE replaced
    return struct.pack("!HHHHHH", ident, flags, 0, 0, 0, 0)


# -- the server -----------------------------------------------------------------------------------


class DnsServer:
    """Answers cluster names from ``index`` and forwards the rest to ``upstreams`` (see module doc).

    ``start`` binds UDP and TCP; ``close`` stops both. ``index`` may be replaced at any time (the
    actor does, on every relevant API change); each query reads it once.
    """

    def __init__(
        self,
        index: DnsIndex,
        upstreams: Sequence[str] = (),
        *,
        forward_timeout: float = FORWARD_TIMEOUT,
    ) -> None:
        self.index = index
        self.upstreams = [parse_upstream(u) for u in upstreams]
        self.forward_timeout = forward_timeout
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] = ("", 0)

    async def start(self, host: str, port: int = 0) -> int:
        """Bind UDP and TCP on ``host:port`` (0: a free port, the same for both); returns the port."""
        loop = asyncio.get_running_loop()
        for _ in range(20):
            transport, _proto = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port)
            )
            bound = int(transport.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, host, bound, reuse_address=True)
            except OSError:
                transport.close()
                if port:
                    raise
                continue
            self._udp = transport
            self.address = (host, bound)
            return bound
        raise OSError(f"no port free for both UDP and TCP on {host}")

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)
        for task in list(self._tasks):
            task.cancel()

    # -- transports -------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_udp(self, data: bytes, peer: Any) -> None:
        reply = await self.handle(data, tcp=False)
        if reply is not None and self._udp is not None:
            self._udp.sendto(reply, peer)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = await self.handle(await reader.readexactly(size), tcp=True)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    # -- one query --------------------------------------------------------------------------------

    async def handle(self, data: bytes, *, tcp: bool) -> bytes | None:
        """The wire reply to one wire query (None: send nothing)."""
        try:
            request = DNSRecord.parse(data)
        except (DNSError, struct.error, IndexError, ValueError):
            return _error(data, RCODE.FORMERR)
        if request.header.opcode != 0 or len(request.questions) != 1:
            reply = request.reply()
            reply.header.rcode = RCODE.NOTIMP if request.header.opcode != 0 else RCODE.FORMERR
            return bytes(reply.pack())
        question = request.q
        qname, qtype = str(question.qname), QTYPE.get(question.qtype)
        answer = self.index.lookup(qname, str(qtype))
        if answer is None:
            forwarded = await self.forward(data, tcp=tcp)
            if forwarded is not None:
                return forwarded
            reply = request.reply()
            reply.header.rcode = RCODE.SERVFAIL
            return bytes(reply.pack())
        reply = request.reply()
        reply.header.rcode = answer.rcode
        for record in answer.answers:
            reply.add_answer(to_rr(record))
        for record in answer.authority:
            reply.add_auth(to_rr(record))
        for record in answer.additional:
            reply.add_ar(to_rr(record))
        await self._follow_cname(reply, answer.answers, question.qtype, tcp)
        packed = bytes(reply.pack())
        if not tcp and len(packed) > udp_limit(request):
            return bytes(truncated(reply).pack())
        return packed

    async def _follow_cname(self, reply: DNSRecord, answers: Sequence[Record], qtype: int, tcp: bool) -> None:
        """Append the records of an out-of-zone CNAME target (an ExternalName's), best effort."""
        if not answers or answers[-1].rtype != "CNAME" or qtype == QTYPE.CNAME:
            return
        target = str(answers[-1].data)
        if self.index.in_zone(target):
            return
        query = DNSRecord.question(target, QTYPE.get(qtype))
        raw = await self.forward(bytes(query.pack()), tcp=tcp)
        if raw is None:
            return
        with contextlib.suppress(DNSError):
            for rr in DNSRecord.parse(raw).rr:
                reply.add_answer(rr)

    async def forward(self, data: bytes, *, tcp: bool) -> bytes | None:
        """The first upstream's reply to ``data`` over the same transport, or None when none answers.
        A truncated UDP reply is relayed as it is: the client retries over TCP, and so do we."""
        exchange = _tcp_exchange if tcp else _udp_exchange
        for host, port in self.upstreams:
            try:
                return await exchange(data, host, port, self.forward_timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as err:
                log.info("upstream %s:%d: %s", host, port, err or type(err).__name__)
        return None


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server._spawn(self.server._answer_udp(data, addr))


class _ExchangeProtocol(asyncio.DatagramProtocol):
    def __init__(self, ident: bytes) -> None:
        self.ident = ident
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data[:2] == self.ident and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def _udp_exchange(data: bytes, host: str, port: int, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _ExchangeProtocol(data[:2]), remote_addr=(host, port)
    )
    try:
        transport.sendto(data)
        return await asyncio.wait_for(protocol.reply, timeout)
    finally:
        transport.close()


async def _tcp_exchange(data: bytes, host: str, port: int, timeout: float) -> bytes:
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            return await reader.readexactly(size)
        finally:
            writer.close()

    return await asyncio.wait_for(exchange(), timeout)
