"""The Kubernetes remotecommand WebSocket protocol (``kubectl exec``): channels, options, final Status.

Shared by the process runtime's streaming server, the node agent's ``/exec`` route and the API
server's proxy, so all three agree on the wire:

* subprotocols ``v5.channel.k8s.io``, ``v4.channel.k8s.io`` and ``channel.k8s.io`` (base64 variants
  are not offered); the client's first offered protocol that we support wins;
* every message is binary; byte 0 is the channel: 0 stdin, 1 stdout, 2 stderr, 3 error/status,
  4 resize (JSON ``{"Width":w,"Height":h}``); with v5, ``[255, n]`` closes channel ``n`` (kubectl
  sends ``ff 00`` at the end of its stdin);
* the last message on channel 3 is a ``metav1.Status`` as JSON (v4/v5): ``Success``, or ``Failure``
  with reason ``NonZeroExitCode`` and cause ``{reason: ExitCode, message: "<code>"}`` (the kubelet's
  ``v4WriteStatusFunc``); with ``channel.k8s.io`` only a failure's message text is sent;
* then the server closes the WebSocket with code 1000.

Pure: no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V1 = "channel.k8s.io"
PROTOCOLS = (V5, V4, V1)

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5 only: [255, channel] closes that channel


def negotiate(offered: Iterable[str], supported: Iterable[str] = PROTOCOLS) -> str | None:
    """The first protocol the client offered that we support (the client's preference), else None."""
    ours = set(supported)
    for p in offered:
        p = p.strip()
        if p in ours:
            return p
    return None


def offered_protocols(header: str | None) -> list[str]:
    """``Sec-WebSocket-Protocol`` header → protocols, in order."""
    return [p.strip() for p in (header or "").split(",") if p.strip()]


def frame(channel: int, data: bytes = b"") -> bytes:
    return bytes((channel,)) + data


def _flag(query: Mapping[str, str], *names: str, default: bool = False) -> bool:
    for n in names:
        if n in query:
            return query[n].lower() in ("1", "true")
    return default


@dataclass(frozen=True, slots=True)
class ExecOptions:
    """What a client asked for. Parsed from either the API's PodExecOptions names
    (``stdin``/``stdout``/``stderr``) or the kubelet's (``input``/``output``/``error``)."""

    command: tuple[str, ...]
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False

    @classmethod
    def from_query(cls, command: Iterable[str], query: Mapping[str, str]) -> ExecOptions:
        tty = _flag(query, "tty")
        return cls(
            command=tuple(command),
            stdin=_flag(query, "stdin", "input"),
            stdout=_flag(query, "stdout", "output"),
            # kubelet ignores stderr with a tty: the terminal merges both streams.
            stderr=_flag(query, "stderr", "error") and not tty,
            tty=tty,
        )

    def kubelet_query(self) -> list[tuple[str, str]]:
        """The query the API server sends to a node agent (kube-apiserver's ``streamLocation``)."""
        q = [("command", c) for c in self.command]
        for name, on in (("input", self.stdin), ("output", self.stdout), ("error", self.stderr)):
            if on:
                q.append((name, "1"))
        if self.tty:
            q.append(("tty", "1"))
        return q


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(exit_code: int) -> dict[str, Any]:
    """The Status for a finished command: Success for 0, else NonZeroExitCode with the code."""
    if exit_code == 0:
        return success_status()
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {exit_code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }


def internal_error_status(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def status_payload(status: Mapping[str, Any], protocol: str) -> bytes | None:
    """Bytes for channel 3 (without the channel byte), or None when nothing is sent (v1 success)."""
    if protocol == V1:
        return None if status.get("status") == "Success" else str(status.get("message", "")).encode()
    return orjson.dumps(dict(status))


def parse_resize(data: bytes) -> tuple[int, int] | None:
    """(columns, rows) from a resize message's payload, None when malformed."""
    try:
        size = orjson.loads(data)
        width, height = int(size["Width"]), int(size["Height"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if width < 0 or height < 0 or width > 0xFFFF or height > 0xFFFF:
        return None
    return width, height


def exit_code_of(status: Mapping[str, Any]) -> int | None:
    """The exit code a client reads from a final Status (0 for Success, None when unknown)."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", ""))
                except ValueError:
                    return None
    return None
