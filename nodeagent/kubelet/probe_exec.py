"""Running one probe: the small I/O half of the prober (``probes`` is the pure half).

``run_probe(handler, container, pod_ip, exec_sync, timeout)`` runs an ``exec``, ``httpGet`` or
``tcpSocket`` handler and returns a ``ProbeOutcome`` whose ``result`` is ``success``, ``failure`` or
``unknown`` (a malformed handler). Rules as the kubelet's: httpGet succeeds on a status in 200..399,
its host defaults to the pod IP, a named port is looked up in the container's ports, headers are sent
as given (a ``User-Agent`` header replaces ours); tcpSocket succeeds when a connection opens; exec
succeeds on exit code 0 and runs through ``exec_sync`` (the caller's CRI ExecSync). Every kind fails
when ``timeout`` passes. gRPC probes are not implemented and yield ``unknown`` with a message.
Safe to call concurrently; holds no state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from nodeagent.kubelet.probes import Result

USER_AGENT = "kube-probe/1.30"
ExecSync = Callable[[Sequence[str], float], Awaitable[tuple[int, bytes | str]]]


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """A probe's verdict and a short output (the kubelet puts it into the Unhealthy event)."""

    result: Result
    output: str = ""


def resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    """A port number, or a named container port; ValueError when neither."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or ():
        if p.get("name") == text:
            return int(p["containerPort"])
    raise ValueError(f"couldn't find port: {text} in {container.get('name', '')}")


async def http_get(
    action: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str, timeout: float
) -> ProbeOutcome:
    port = resolve_port(action.get("port"), container)
    host = action.get("host") or pod_ip
    scheme = str(action.get("scheme") or "HTTP").lower()
    path = str(action.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    netloc = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{netloc}:{port}{path}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in action.get("httpHeaders") or ():
        headers[h["name"]] = h.get("value", "")
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url, headers=headers, allow_redirects=False, ssl=False) as resp,
        ):
            body = (await resp.content.read(10 * 1024)).decode("utf-8", errors="replace")
            if 200 <= resp.status < 400:
                return ProbeOutcome("success", body)
            return ProbeOutcome("failure", f"HTTP probe failed with statuscode: {resp.status}")
    except TimeoutError:
        return ProbeOutcome("failure", f'Get "{url}": context deadline exceeded')
    except (aiohttp.ClientError, OSError) as err:
        return ProbeOutcome("failure", f'Get "{url}": {err}')


async def tcp_socket(
    action: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str, timeout: float
) -> ProbeOutcome:
    port = resolve_port(action.get("port"), container)
    host = action.get("host") or pod_ip
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return ProbeOutcome("failure", f"dial tcp {host}:{port}: i/o timeout")
    except OSError as err:
        return ProbeOutcome("failure", f"dial tcp {host}:{port}: {err}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeOutcome("success")


async def exec_probe(action: Mapping[str, Any], exec_sync: ExecSync, timeout: float) -> ProbeOutcome:
    command = [str(c) for c in action.get("command") or ()]
    try:
        code, output = await asyncio.wait_for(exec_sync(command, timeout), timeout)
    except TimeoutError:
        return ProbeOutcome("failure", f"command timed out after {timeout:g}s")
    text = output.decode("utf-8", errors="replace") if isinstance(output, bytes) else output
    return ProbeOutcome("success" if code == 0 else "failure", text)


async def run_probe(
    handler: Mapping[str, Any],
    container: Mapping[str, Any],
    pod_ip: str,
    exec_sync: ExecSync,
    timeout: float,
) -> ProbeOutcome:
    """Run the handler in ``handler`` (a probe dict); see the module docstring."""
    try:
        if "exec" in handler:
            return await exec_probe(handler["exec"], exec_sync, timeout)
        if "httpGet" in handler:
            return await http_get(handler["httpGet"], container, pod_ip, timeout)
        if "tcpSocket" in handler:
            return await tcp_socket(handler["tcpSocket"], container, pod_ip, timeout)
    except ValueError as err:
        return ProbeOutcome("unknown", str(err))
    if "grpc" in handler:
        return ProbeOutcome("unknown", "grpc probes are not supported by raykube")
    return ProbeOutcome("unknown", "missing probe handler")
