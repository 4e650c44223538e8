"""``kubectl logs`` at the node: the kubelet's ``/containerLogs`` query and the log stream.

``log_options(query)`` reads the PodLogOptions query (``follow``, ``previous``, ``tailLines``,
``sinceSeconds``, ``sinceTime``, ``timestamps``, ``limitBytes``) with the API server's validation texts.
``stream_log`` yields the selected output of a CRI log file (``nodeagent.kubelet.cri_logs``) and, when
following, new records as they are written, until the client goes away or the container is gone and
its file has stopped growing: the file is always read to its end after the container stops, so the
last lines are never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from nodeagent.kubelet.cri_logs import (
    LogFormatError,
    LogOptions,
    parse_prefix,
    parse_time,
    render,
    select,
    since_of,
)


class BadLogQuery(ValueError):
    """A query the API server would reject (400 BadRequest)."""


@dataclass(frozen=True, slots=True)
class LogQuery:
    options: LogOptions
    follow: bool = False
    previous: bool = False


def _bool(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("1", "true")


def _int(query: Mapping[str, str], name: str, minimum: int) -> int | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadLogQuery(f"invalid value for {name}: {raw!r}") from None
    if value < minimum:
        word = "greater than 0" if minimum == 1 else "greater than or equal to 0"
        raise BadLogQuery(f"{name}: Invalid value: {value}: must be {word}")
    return value


def log_options(query: Mapping[str, str]) -> LogQuery:
    """Parse a PodLogOptions query; raises ``BadLogQuery`` with Kubernetes' validation texts."""
    since_seconds = _int(query, "sinceSeconds", 1)
    since_time: datetime | None = None
    if query.get("sinceTime"):
        try:
            since_time = parse_time(query["sinceTime"])
        except LogFormatError:
            raise BadLogQuery(f"invalid value for sinceTime: {query['sinceTime']!r}") from None
    if since_seconds is not None and since_time is not None:
        raise BadLogQuery("at most one of `sinceTime` or `sinceSeconds` may be specified")
    opts = LogOptions(
        tail_lines=_int(query, "tailLines", 0),
        since_seconds=since_seconds,
        since_time=since_time,
        timestamps=_bool(query, "timestamps"),
        limit_bytes=_int(query, "limitBytes", 1),
    )
    return LogQuery(opts, follow=_bool(query, "follow"), previous=_bool(query, "previous"))


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


async def stream_log(
    path: str,
    opts: LogOptions,
    now: datetime,
    *,
    follow: bool,
    running: Callable[[], bool],
    poll_interval: float = 0.2,
) -> AsyncGenerator[bytes, None]:
    """The output of ``kubectl logs`` for the file at ``path``.

    Without ``follow``: one chunk (or none). With ``follow``: the selected existing output, then new
    records every ``poll_interval`` while ``running()`` is true; once it is false the rest of the file is
    read and the stream ends. ``limitBytes`` bounds the whole stream. A missing file reads as empty
    (the runtime creates it when the container starts).
    """
    if not follow:
        out = select(parse_prefix(_read(path))[0], opts, now)
        if out:
            yield out
        return
    budget = opts.limit_bytes
    since = since_of(opts, now)

    def take(chunk: bytes) -> bytes:
        nonlocal budget
        if budget is None:
            return chunk
        chunk, budget = chunk[:budget], budget - min(budget, len(chunk))
        return chunk

    f = None
    try:
        while f is None:
            alive = running()
            with contextlib.suppress(FileNotFoundError):
                f = open(path, "rb")  # noqa: SIM115 - closed in finally
            if f is None:
                if not alive:
                    return
                await asyncio.sleep(poll_interval)
        records, cut = parse_prefix(f.read())
        buffer = b""
        first = select(records, LogOptions(opts.tail_lines, None, since, opts.timestamps), now)
        f.seek(cut)
        if first:
            yield take(first)
        while budget is None or budget > 0:
            alive = running()  # before reading: whatever was written before it stopped is read below
            more = f.read()
            if more:
                buffer += more
                records, cut = parse_prefix(buffer)
                buffer = buffer[cut:]
                if since is not None:
                    records = [r for r in records if r.time >= since]
                chunk = render(records, opts.timestamps)
                if chunk:
                    yield take(chunk)
                continue
            if not alive:
                return
            await asyncio.sleep(poll_interval)
    finally:
        if f is not None:
            f.close()
