"""cri_logs: the CRI line format, kubectl logs options, paths, the writer half and ``follow``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nodeagent.kubelet.cri_logs import (
    LogFormatError,
    LogOptions,
    container_log_path,
    follow,
    format_lines,
    parse_log,
    parse_prefix,
    parse_time,
    select,
)
from tests.nodeagent.kubelet.helpers import T0, at

LOG = (
    b"2026-01-01T12:00:00.000000001Z stdout F one\n"
    b"2026-01-01T12:00:01.5Z stderr F two\n"
    b"2026-01-01T12:00:02Z stdout P thr\n"
    b"2026-01-01T12:00:02.1Z stderr F interleaved\n"
    b"2026-01-01T12:00:02.2Z stdout F ee\n"
    b"2026-01-01T12:00:03Z stdout F \n"
    b"2026-01-01T12:00:04Z stdout P unfinished\n"
)


def test_parse_joins_partials_and_skips_unfinished() -> None:
    records = parse_log(LOG)
    assert [(r.stream, r.content) for r in records] == [
        ("stdout", b"one"),
        ("stderr", b"two"),
        ("stderr", b"interleaved"),
        ("stdout", b"three"),
        ("stdout", b""),
    ]
    assert records[3].timestamp == "2026-01-01T12:00:02Z"
    assert records[0].time == T0


def test_parse_prefix_stops_before_an_open_partial() -> None:
    records, consumed = parse_prefix(LOG)
    assert len(records) == 5
    assert LOG[consumed:] == b"2026-01-01T12:00:04Z stdout P unfinished\n"


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        pytest.param("2026-01-01T12:00:00.123456789Z", 123456, id="nanos-truncated"),
        pytest.param("2026-01-01T12:00:00Z", 0, id="no-fraction"),
        pytest.param("2026-01-01T13:00:00.5+01:00", 500000, id="offset"),
    ],
)
def test_parse_time(text: str, micro: int) -> None:
    t = parse_time(text)
    assert (t.hour, t.microsecond) == (12, micro)


@pytest.mark.parametrize(
    "line", [b"garbage\n", b"2026-01-01T12:00:00Z stdin F x\n", b"2026-01-01T12:00:00Z stdout X x\n"]
)
def test_bad_lines(line: bytes) -> None:
    with pytest.raises(LogFormatError):
        parse_log(line)


RECORDS = parse_log(LOG)
NOW = at(10)


@pytest.mark.parametrize(
    ("opts", "want"),
    [
        pytest.param(LogOptions(), b"one\ntwo\ninterleaved\nthree\n\n", id="all"),
        pytest.param(LogOptions(tail_lines=2), b"three\n\n", id="tail"),
        pytest.param(LogOptions(tail_lines=0), b"", id="tail-0"),
        pytest.param(LogOptions(since_seconds=8), b"interleaved\nthree\n\n", id="since-seconds"),
        pytest.param(
            LogOptions(since_time=at(1.5)), b"two\ninterleaved\nthree\n\n", id="since-time-inclusive"
        ),
        pytest.param(LogOptions(tail_lines=4, since_time=at(2.5)), b"\n", id="tail-then-since"),
        pytest.param(
            LogOptions(tail_lines=1, timestamps=True),
            b"2026-01-01T12:00:03Z \n",
            id="timestamps-original-text",
        ),
        pytest.param(LogOptions(limit_bytes=6), b"one\ntw", id="limit-bytes"),
    ],
)
def test_select(opts: LogOptions, want: bytes) -> None:
    assert select(RECORDS, opts, NOW) == want


def test_format_lines_round_trip_and_split() -> None:
    out, rest = format_lines(T0, "stdout", b"hello\nworld\n" + b"x" * 10 + b"\npart", max_line=4)
    assert rest == b"part"
    records = parse_log(out)
    assert [r.content for r in records] == [b"hello", b"world", b"x" * 10]
    assert out.count(b" P ") == 1 + 1 + 2  # hello, world and xxxxxxxxxx are split at 4 bytes
    assert records[0].timestamp == "2026-01-01T12:00:00.000000000Z"


@pytest.mark.parametrize(
    ("restarts", "previous", "want"),
    [
        pytest.param(0, False, "/logs/ns_p_u/c/0.log", id="current"),
        pytest.param(2, True, "/logs/ns_p_u/c/1.log", id="previous"),
    ],
)
def test_paths(restarts: int, previous: bool, want: str) -> None:
    assert container_log_path("/logs", "ns", "p", "u", "c", restarts, previous) == want


def test_previous_without_restart() -> None:
    with pytest.raises(ValueError, match='previous terminated container "c" in pod "p" not found'):
        container_log_path("/logs", "ns", "p", "u", "c", 0, previous=True)


async def _follow(path: Path, opts: LogOptions) -> list[bytes]:
    stop = asyncio.Event()
    got: list[bytes] = []
    stream = follow(str(path), opts, NOW, stop, poll_interval=0.01)
    got.append(await anext(stream))  # the existing tail
    with path.open("ab") as f:  # a partial first: nothing may come out until its F line
        f.write(b"2026-01-01T12:00:05Z stdout P new \n")
        f.flush()
        f.write(b"2026-01-01T12:00:05Z stdout F line\n")
    got.append(await anext(stream))
    stop.set()
    got.extend([chunk async for chunk in stream])
    return got


def test_follow(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(LOG[: LOG.index(b"2026-01-01T12:00:04Z")])
    got = asyncio.run(asyncio.wait_for(_follow(path, LogOptions(tail_lines=1, timestamps=True)), 10))
    assert got == [b"2026-01-01T12:00:03Z \n", b"2026-01-01T12:00:05Z new line\n"]
