"""The remotecommand protocol's pure parts: negotiation, options, resize messages, final Status."""

from __future__ import annotations

import pytest

from cluster.machinery import remotecommand as rc


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        pytest.param("v5.channel.k8s.io, v4.channel.k8s.io", rc.V5, id="kubectl-1.30"),
        pytest.param("v4.channel.k8s.io,channel.k8s.io", rc.V4, id="client-order-wins"),
        pytest.param("base64.channel.k8s.io, channel.k8s.io", rc.V1, id="skips-unsupported"),
        pytest.param("SPDY/3.1", None, id="none-supported"),
        pytest.param(None, None, id="no-header"),
    ],
)
def test_negotiate(header: str | None, chosen: str | None) -> None:
    assert rc.negotiate(rc.offered_protocols(header)) == chosen


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            {"stdin": "true", "stdout": "1"}, rc.ExecOptions(("sh",), True, True, False, False), id="api"
        ),
        pytest.param(
            {"input": "1", "output": "1", "error": "1"},
            rc.ExecOptions(("sh",), True, True, True),
            id="kubelet",
        ),
        pytest.param(
            {"stdout": "1", "stderr": "1", "tty": "1"},
            rc.ExecOptions(("sh",), False, True, False, True),
            id="tty",
        ),
    ],
)
def test_exec_options(query: dict[str, str], expected: rc.ExecOptions) -> None:
    options = rc.ExecOptions.from_query(["sh"], query)
    assert options == expected
    assert rc.ExecOptions.from_query(["sh"], dict(options.kubelet_query())) == expected


@pytest.mark.parametrize(
    ("payload", "size"),
    [
        pytest.param(b'{"Width":80,"Height":24}', (80, 24), id="ok"),
        pytest.param(b'{"Width":-1,"Height":24}', None, id="negative"),
        pytest.param(b'{"Width":70000,"Height":24}', None, id="too-wide"),
        pytest.param(b"{}", None, id="missing"),
        pytest.param(b"nope", None, id="not-json"),
    ],
)
def test_parse_resize(payload: bytes, size: tuple[int, int] | None) -> None:
    assert rc.parse_resize(payload) == size


@pytest.mark.parametrize("code", [pytest.param(0, id="success"), pytest.param(3, id="failure")])
def test_exit_status_round_trips(code: int) -> None:
    status = rc.exit_status(code)
    assert rc.exit_code_of(status) == code
    assert rc.frame(rc.ERROR, rc.status_payload(status, rc.V5) or b"")[0] == rc.ERROR


def test_v1_sends_only_a_failure_message() -> None:
    assert rc.status_payload(rc.exit_status(0), rc.V1) is None
    assert (
        rc.status_payload(rc.exit_status(2), rc.V1)
        == b"command terminated with non-zero exit code: exit status 2"
    )
