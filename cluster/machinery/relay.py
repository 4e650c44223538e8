"""Relay one remotecommand WebSocket to another, frame by frame (agent ↔ runtime, API server ↔ agent).

Frames are copied unchanged both ways, so the negotiated subprotocol holds end to end. The one
translation: a v5 client talking through a v4 hop cannot close a single channel, so its ``[255, n]``
frames are dropped (``drop_stream_close``). When the far side closes (after its Status on channel 3)
the near side is closed with the same code; when the near side leaves, the far side is closed, which
ends the command there.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import ClientWebSocketResponse, WSMsgType, web

from cluster.machinery import remotecommand as rc

_RESERVED_CLOSE_CODES = frozenset({1005, 1006, 1015})


async def relay(
    near: web.WebSocketResponse, far: ClientWebSocketResponse, *, drop_stream_close: bool = False
) -> None:
    """Copy frames until either side closes; both are closed on return."""

    async def down() -> None:
        async for msg in far:
            if msg.type == WSMsgType.BINARY:
                await near.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await near.send_str(msg.data)

    async def up() -> None:
        async for msg in near:
            if msg.type == WSMsgType.BINARY:
                if drop_stream_close and msg.data[:1] == bytes((rc.CLOSE,)):
                    continue
                await far.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await far.send_str(msg.data)

    tasks = {asyncio.ensure_future(down()), asyncio.ensure_future(up())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        code = far.close_code if far.closed and far.close_code is not None else 1000
        if code in _RESERVED_CLOSE_CODES:
            # 1005/1006/1015 describe what a peer observed and must never be sent (RFC 6455 7.4.1);
            # forwarding them makes kubectl fail with "bad close code" after a good Status.
            code = 1000
        with contextlib.suppress(Exception):
            await near.close(code=code)
        with contextlib.suppress(Exception):
            await far.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
