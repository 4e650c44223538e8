"""``GET /containerLogs/...`` of ``AgentServer`` against a real process runtime: each option, follow
receiving new lines and ending when the container is gone, previous, and the Status errors."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from nodeagent.server.logs import BadLogQuery, log_options
from tests.nodeagent.server.harness import environment

LOG = (
    b"2026-01-01T00:00:01.000000000Z stdout F one\n"
    b"2026-01-01T00:00:02.000000000Z stderr F two\n"
    b"2026-01-01T00:00:03.000000000Z stdout P thr\n"
    b"2026-01-01T00:00:03.000000000Z stdout F ee\n"
)


@pytest.mark.parametrize(
    ("query", "want"),
    [
        pytest.param("", b"one\ntwo\nthree\n", id="all"),
        pytest.param("tailLines=1", b"three\n", id="tail"),
        pytest.param("tailLines=0", b"", id="tail-0"),
        pytest.param("sinceTime=2026-01-01T00:00:02Z", b"two\nthree\n", id="since-time"),
        pytest.param(
            "timestamps=true&tailLines=2",
            b"2026-01-01T00:00:02.000000000Z two\n2026-01-01T00:00:03.000000000Z three\n",
            id="timestamps",
        ),
        pytest.param("limitBytes=5", b"one\nt", id="limit-bytes"),
        pytest.param("previous=true", b"old\n", id="previous"),
    ],
)
def test_log_options(tmp_path: Path, query: str, want: bytes) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            await env.add_container("app", ["sleep", "60"])
            ref = env.lookup.refs[("default", "web", "app")]
            prev = tmp_path / "prev.log"
            prev.write_bytes(b"2026-01-01T00:00:00.000000000Z stdout F old\n")
            env.lookup.refs[("default", "web", "app")] = replace(
                ref, log_path=str(tmp_path / "fixed.log"), previous_log_path=str(prev)
            )
            (tmp_path / "fixed.log").write_bytes(LOG)
            async with s.get(f"{env.base}/containerLogs/default/web/app?{query}") as r:
                assert (r.status, r.content_type, await r.read()) == (200, "text/plain", want)

    asyncio.run(main())


def test_logs_of_a_real_container_and_since_seconds(tmp_path: Path) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            cid = await env.add_container("app", ["sh", "-c", "echo a; echo b >&2"])
            await env.wait_exited(cid)
            async with s.get(f"{env.base}/containerLogs/default/web/app") as r:
                assert sorted((await r.read()).splitlines()) == [b"a", b"b"]
            async with s.get(f"{env.base}/containerLogs/default/web/app?sinceSeconds=3600") as r:
                assert sorted((await r.read()).splitlines()) == [b"a", b"b"]

    asyncio.run(main())


def test_follow_streams_new_lines_and_ends_when_the_container_is_gone(tmp_path: Path) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            # The container prints a line each time a file appears, so the test paces it without sleeps.
            script = (
                "echo first; while [ ! -e go ]; do sleep 0.02; done; echo second; "
                "while [ ! -e end ]; do sleep 0.02; done; echo last"
            )
            cid = await env.add_container("app", ["sh", "-c", f"cd {tmp_path} && {script}"])
            async with s.get(f"{env.base}/containerLogs/default/web/app?follow=true") as r:
                assert r.status == 200
                got = b""
                while got != b"first\n":
                    got += await r.content.readany()
                (tmp_path / "go").touch()
                while got != b"first\nsecond\n":
                    got += await r.content.readany()
                (tmp_path / "end").touch()
                await env.wait_exited(cid)
                env.lookup.mark_stopped("default", "web", "app")
                got += await r.content.read()  # to EOF: the stream ends by itself
            assert got == b"first\nsecond\nlast\n"

    asyncio.run(main())


@pytest.mark.parametrize(
    ("path", "code", "reason", "message"),
    [
        pytest.param(
            "/containerLogs/default/nope/app", 404, "NotFound", 'pods "nope" not found', id="no-pod"
        ),
        pytest.param(
            "/containerLogs/default/web/x",
            400,
            "BadRequest",
            "container x is not valid for pod web",
            id="no-container",
        ),
        pytest.param(
            "/containerLogs/default/web/app?previous=true",
            400,
            "BadRequest",
            'previous terminated container "app" in pod "web" not found',
            id="no-previous",
        ),
        pytest.param(
            "/containerLogs/default/web/app?tailLines=x",
            400,
            "BadRequest",
            "invalid value for tailLines: 'x'",
            id="bad-int",
        ),
    ],
)
def test_log_errors_are_status(tmp_path: Path, path: str, code: int, reason: str, message: str) -> None:
    async def main() -> None:
        async with environment(tmp_path) as env, aiohttp.ClientSession() as s:
            await env.add_container("app", ["sleep", "60"])
            async with s.get(env.base + path) as r:
                body = await r.json()
            assert (r.status, body["kind"], body["code"], body["reason"], body["message"]) == (
                code,
                "Status",
                code,
                reason,
                message,
            )

    asyncio.run(main())


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param(
            {"sinceSeconds": "0"}, "sinceSeconds: Invalid value: 0: must be greater than 0", id="since-0"
        ),
        pytest.param(
            {"limitBytes": "0"}, "limitBytes: Invalid value: 0: must be greater than 0", id="limit-0"
        ),
        pytest.param(
            {"tailLines": "-1"},
            "tailLines: Invalid value: -1: must be greater than or equal to 0",
            id="tail-negative",
        ),
        pytest.param(
            {"sinceSeconds": "5", "sinceTime": "2026-01-01T00:00:00Z"},
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
            id="both-since",
        ),
        pytest.param({"sinceTime": "yesterday"}, "invalid value for sinceTime: 'yesterday'", id="bad-time"),
    ],
)
def test_log_query_validation(query: dict[str, str], message: str) -> None:
    with pytest.raises(BadLogQuery) as e:
        log_options(query)
    assert str(e.value) == message
