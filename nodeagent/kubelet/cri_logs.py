"""The CRI container log format, and ``kubectl logs`` options as filters over parsed records.

A CRI log line is ``<RFC3339Nano time> <stdout|stderr> <F|P> <content>\\n``; ``P`` marks a partial
line continued by the following lines up to an ``F``. ``parse_log`` joins partials into one
``LogRecord`` (time and stream of its first fragment). ``select`` applies the options in the kubelet's
order: ``tailLines`` (last N records), then ``sinceTime``/``sinceSeconds`` (records at or after),
``timestamps`` (prefix each line with its original time text), ``limitBytes`` (truncate the output).
Paths follow the kubelet: ``<root>/<namespace>_<name>_<uid>/<container>/<restartCount>.log``, and
``--previous`` reads the file of restart count - 1.

``format_lines`` is the writer's half for runtimes (splits output into F/P lines, 16 KiB max).
``follow`` is the only I/O: an async iterator over a growing file (``kubectl logs -f``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_LINE = 16 * 1024  # containerd's default max container log line size


class LogFormatError(ValueError):
    """A line that is not in the CRI log format."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One logical log line; ``content`` has no trailing newline."""

    timestamp: str  # the original RFC3339Nano text
    time: datetime  # the same, to microseconds, UTC
    stream: str
    content: bytes


@dataclass(frozen=True, slots=True)
class LogOptions:
    """``kubectl logs`` options (PodLogOptions): None means unset."""

    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


def parse_time(text: str) -> datetime:
    """RFC3339 with any fraction (nanoseconds truncated to microseconds) and ``Z`` or an offset."""
    main, frac, tz = text, "", "+00:00"
    if text.endswith("Z"):
        main = text[:-1]
    elif len(text) > 6 and text[-6] in "+-":
        main, tz = text[:-6], text[-6:]
    if "." in main:
        main, frac = main.split(".", 1)
    try:
        when = datetime.fromisoformat(f"{main}.{(frac + '000000')[:6]}{tz}")
    except ValueError as err:
        raise LogFormatError(f"bad timestamp {text!r}") from err
    return when.astimezone(UTC)


def format_time(when: datetime) -> str:
    """RFC3339Nano text for a UTC datetime (nanoseconds from microseconds)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def parse_line(line: bytes) -> tuple[str, str, bool, bytes]:
    """(time text, stream, partial?, content) of one line (without its newline)."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        raise LogFormatError(f"unexpected log line {line[:80]!r}")
    stamp, stream, tag = parts[0].decode(), parts[1].decode(), parts[2].split(b":")[0]
    if stream not in ("stdout", "stderr") or tag not in (b"F", b"P"):
        raise LogFormatError(f"unexpected log line {line[:80]!r}")
    return stamp, stream, tag == b"P", parts[3] if len(parts) == 4 else b""


def parse_log(data: bytes) -> list[LogRecord]:
    """All complete records in ``data``; a trailing unterminated line or partial run is left out."""
    return parse_prefix(data)[0]


def parse_prefix(data: bytes) -> tuple[list[LogRecord], int]:
    """The complete records in ``data`` and how many bytes they span (the rest waits for more data)."""
    records: list[LogRecord] = []
    pending: dict[str, tuple[str, list[bytes]]] = {}  # partials per stream
    consumed = offset = 0
    for line in data.split(b"\n")[:-1]:
        offset += len(line) + 1
        if line:
            stamp, stream, partial, content = parse_line(line)
            first, parts = pending.pop(stream, (stamp, []))
            parts.append(content)
            if partial:
                pending[stream] = (first, parts)
            else:
                records.append(LogRecord(first, parse_time(first), stream, b"".join(parts)))
        if not pending:
            consumed = offset
    return records, consumed


def format_lines(when: datetime, stream: str, data: bytes, max_line: int = MAX_LINE) -> tuple[bytes, bytes]:
    """CRI lines for the complete lines in ``data`` (long ones split into P fragments) + the remainder.

    The caller keeps the remainder and prepends it to the next chunk of output; at the end of the
    stream it passes the remainder with a ``b"\\n"`` appended.
    """
    stamp = format_time(when).encode()
    out: list[bytes] = []
    *complete, rest = data.split(b"\n")
    for line in complete:
        while len(line) > max_line:
            out.append(b"%s %s P %s\n" % (stamp, stream.encode(), line[:max_line]))
            line = line[max_line:]
        out.append(b"%s %s F %s\n" % (stamp, stream.encode(), line))
    while len(rest) > max_line:
        out.append(b"%s %s P %s\n" % (stamp, stream.encode(), rest[:max_line]))
        rest = rest[max_line:]
    return b"".join(out), rest


def since_of(opts: LogOptions, now: datetime) -> datetime | None:
    """The earliest time to show: sinceTime, or now - sinceSeconds."""
    if opts.since_time is not None:
        return opts.since_time
    if opts.since_seconds is not None:
        return now - timedelta(seconds=opts.since_seconds)
    return None


def render(records: Iterable[LogRecord], timestamps: bool) -> bytes:
    """Lines as ``kubectl logs`` prints them."""
    out = bytearray()
    for r in records:
        if timestamps:
            out += r.timestamp.encode() + b" "
        out += r.content + b"\n"
    return bytes(out)


def select(records: list[LogRecord], opts: LogOptions, now: datetime) -> bytes:
    """The output of ``kubectl logs`` with ``opts`` over ``records``."""
    chosen = records
    if opts.tail_lines is not None:
        chosen = chosen[-opts.tail_lines :] if opts.tail_lines > 0 else []
    since = since_of(opts, now)
    if since is not None:
        chosen = [r for r in chosen if r.time >= since]
    out = render(chosen, opts.timestamps)
    if opts.limit_bytes is not None:
        out = out[: opts.limit_bytes]
    return out


def pod_log_dir(root: str, namespace: str, name: str, uid: str) -> str:
    return os.path.join(root, f"{namespace}_{name}_{uid}")


def container_log_path(
    root: str, namespace: str, name: str, uid: str, container: str, restart_count: int, previous: bool = False
) -> str:
    """The log file of a container instance; ValueError when ``previous`` and it never restarted."""
    attempt = restart_count - 1 if previous else restart_count
    if attempt < 0:
        raise ValueError(f'previous terminated container "{container}" in pod "{name}" not found')
    return os.path.join(pod_log_dir(root, namespace, name, uid), container, f"{attempt}.log")


async def follow(
    path: str, opts: LogOptions, now: datetime, stop: asyncio.Event, poll_interval: float = 0.2
) -> AsyncIterator[bytes]:
    """Yield the selected existing output, then new records as they are written, until ``stop`` is set.

    ``limitBytes`` bounds the whole stream; ``tailLines`` applies to what exists at the start.
    """
    budget = opts.limit_bytes
    since = since_of(opts, now)

    def take(chunk: bytes) -> bytes:
        nonlocal budget
        if budget is None:
            return chunk
        chunk, budget = chunk[:budget], budget - min(budget, len(chunk))
        return chunk

    with open(path, "rb") as f:
        data = f.read()
        records, cut = parse_prefix(data)
        first = select(records, LogOptions(opts.tail_lines, None, since, opts.timestamps), now)
        buffer = data[cut:]
        if first:
            yield take(first)
        while not stop.is_set() and (budget is None or budget > 0):
            more = f.read()
            if not more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_interval)
                continue
            buffer += more
            records, cut = parse_prefix(buffer)
            buffer = buffer[cut:]
            if since is not None:
                records = [r for r in records if r.time >= since]
            chunk = render(records, opts.timestamps)
            if chunk:
                yield take(chunk)
