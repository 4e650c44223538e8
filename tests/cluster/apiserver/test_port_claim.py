"""The first API server of a cluster refuses a port something already listens on: with SO_REUSEPORT
its bind alone would succeed and silently share the port with another cluster."""

from __future__ import annotations

import asyncio
import socket

import pytest

from cluster.apiserver.actor import PortTaken, _wait_port_free, check_port_free


def _listener(reuse_port: bool = False) -> socket.socket:
    """A listening socket as the API server's (SO_REUSEADDR, which its connections inherit)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", 0))
    s.listen()
    return s


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "reuse-port"])
def test_a_listener_is_refused_with_advice(reuse_port: bool) -> None:
    with _listener(reuse_port) as s:
        port = s.getsockname()[1]
        with pytest.raises(PortTaken, match="--port"):
            check_port_free("0.0.0.0", port)


def test_connections_lingering_from_a_stopped_server_do_not_count() -> None:
    server = _listener(reuse_port=True)
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end lingers in TIME_WAIT
    client.close()
    server.close()
    check_port_free("0.0.0.0", port)


def test_waits_for_a_port_being_released() -> None:
    async def scenario() -> None:
        server = _listener()
        asyncio.get_running_loop().call_later(0.5, server.close)
        await _wait_port_free("0.0.0.0", server.getsockname()[1], timeout=10)

    asyncio.run(scenario())
