"""Container logs in the CRI format kubelet reads: ``<RFC3339Nano> <stream> <F|P> <content>``.

``format_line`` is pure (it takes the timestamp); ``LogWriter`` pumps a container's stdout and
stderr pipes into one file, splitting output at newlines. A line longer than ``MAX_LINE`` is written
as partial (``P``) chunks followed by the final (``F``) piece, as containerd does; output left
without a trailing newline at EOF is flushed as a final line.

Invariants: each write is one whole record ending in ``\n``; the file is opened in append mode, so
ReopenContainerLog (after rotation) just reopens the path.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cluster.machinery.files import open_private, private_dir

MAX_LINE = 16 * 1024


def rfc3339_nano(ns: int) -> str:
    """``2024-01-02T03:04:05.123456789Z`` from nanoseconds since the epoch (UTC)."""
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def format_line(ns: int, stream: str, content: bytes, partial: bool) -> bytes:
    return f"{rfc3339_nano(ns)} {stream} {'P' if partial else 'F'} ".encode() + content + b"\n"


def split_records(buf: bytes, eof: bool) -> tuple[list[tuple[bytes, bool]], bytes]:
    """Split ``buf`` into (content, partial) records; return them and the unconsumed tail."""
    out: list[tuple[bytes, bool]] = []
    while True:
        nl = buf.find(b"\n")
        if nl == -1 or nl > MAX_LINE:
            if len(buf) > MAX_LINE:
                out.append((buf[:MAX_LINE], True))
                buf = buf[MAX_LINE:]
                continue
            break
        out.append((buf[:nl], False))
        buf = buf[nl + 1 :]
    if eof and buf:
        out.append((buf, False))
        buf = b""
    return out, buf


class LogWriter:
    """Appends records from several streams to one CRI log file. Not thread-safe; one event loop."""

    def __init__(self, path: str | os.PathLike[str], clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.path = Path(path)
        private_dir(self.path.parent)
        self._clock_ns = clock_ns
        self._fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)

    def reopen(self) -> None:
        old = self._fd
        private_dir(self.path.parent)
        self._fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)
        os.close(old)

    def write(self, stream: str, records: list[tuple[bytes, bool]]) -> None:
        if not records:
            return
        now = self._clock_ns()
        os.write(self._fd, b"".join(format_line(now, stream, c, p) for c, p in records))

    async def pump(self, stream: str, reader: asyncio.StreamReader) -> None:
        """Copy ``reader`` into the log until EOF."""
        buf = b""
        while True:
            chunk = await reader.read(65536)
            records, buf = split_records(buf + chunk, eof=not chunk)
            self.write(stream, records)
            if not chunk:
                return

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
