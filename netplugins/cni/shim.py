"""The CNI shim executable: what containerd runs as a CNI plugin, forwarding to our gRPC plugin.

A runtime that executes CNI binaries (containerd, CRI-O, ``cnitool``) finds ``raykube-cni`` in its
CNI bin directory because a network configuration entry says ``"type": "raykube-cni"``. The entry
also names the plugin's unix socket (``"socket": "/.../network.sock"``). The shim reads the
``CNI_*`` environment and the entry on stdin, makes the matching call with ``CNIClient`` and prints
the specification's result (ADD, exit 0), nothing (DEL, CHECK, STATUS, GC, exit 0) or error object
(exit 1) on stdout.

- VERSION is answered here, without the socket: ``{"cniVersion", "supportedVersions"}``.
- ADD's result is printed in the version the configuration asks for (``convert_result``): 1.1.0 as
  the plugin answered, 1.0.0 without the fields 1.1 added (interface mtu/socketPath/pciID, route
  mtu/advmss/priority/table/scope), 0.4.0 also with each IP's ``"version"``; another version is
  error 1 (incompatible version).
- GC's valid attachments are the configuration's ``cni.dev/valid-attachments`` (``cni.dev/attachments``,
  which libcni also sets, is read when the first is absent).

Invariants: stdout carries exactly one JSON object or nothing, so a runtime can always parse it;
every failure, even an unexpected exception, becomes an error object and exit 1; the module imports
gRPC only when it has to call the plugin (the runtime runs it once per pod operation).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from netplugins.cni.types import (
    CNI_VERSION,
    SUPPORTED_VERSIONS,
    Attachment,
    CNIError,
    IncompatibleVersion,
    InvalidNetworkConfig,
    IOFailure,
    NetRequest,
    Result,
)

SOCKET_KEY = "socket"
VALID_ATTACHMENTS_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")
# Fields each version added to the result; converting down removes those of later versions.
_ADDED_IN_1_1 = {
    "interfaces": ("mtu", "socketPath", "pciID"),
    "routes": ("mtu", "advmss", "priority", "table", "scope"),
}


def version_reply(conf: Mapping[str, Any]) -> dict[str, Any]:
    """The VERSION command's answer (the spec's version object)."""
    return {"cniVersion": CNI_VERSION, "supportedVersions": list(SUPPORTED_VERSIONS)}


def convert_result(result: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The result object (JSON form) as the specification's ``version`` shapes it."""
    if version not in SUPPORTED_VERSIONS:
        raise IncompatibleVersion(
            f"configuration asks for CNI version {version!r}", f"supported: {', '.join(SUPPORTED_VERSIONS)}"
        )
    out = {k: v for k, v in result.items() if k != "cniVersion"}
    if version != "1.1.0":
        for key, fields in _ADDED_IN_1_1.items():
            if key in out:
                out[key] = [{k: v for k, v in item.items() if k not in fields} for item in out[key]]
    if version == "0.4.0" and "ips" in out:
        out["ips"] = [{**ip, "version": "6" if ":" in ip["address"] else "4"} for ip in out["ips"]]
    return {"cniVersion": version, **out}


def valid_attachments(conf: Mapping[str, Any]) -> list[Attachment]:
    """GC's list of attachments to keep, from the configuration the runtime passed."""
    for key in VALID_ATTACHMENTS_KEYS:
        if key in conf:
            items = conf[key] or []
            try:
                return [Attachment(str(a["containerID"]), str(a.get("ifname") or "eth0")) for a in items]
            except (TypeError, KeyError) as e:
                raise InvalidNetworkConfig(f"{key} must be a list of {{containerID, ifname}}") from e
    return []


def socket_of(conf: Mapping[str, Any]) -> str:
    path = conf.get(SOCKET_KEY)
    if not isinstance(path, str) or not path:
        raise InvalidNetworkConfig(
            f'the raykube-cni entry needs "{SOCKET_KEY}": the network plugin\'s socket'
        )
    return path


async def call_plugin(command: str, req: NetRequest, conf: Mapping[str, Any]) -> dict[str, Any] | None:
    """Forward one command to the plugin at the configuration's socket; the JSON to print, if any."""
    from netplugins.cni.client import CNIClient  # gRPC is only needed from here on

    version = str(conf.get("cniVersion") or CNI_VERSION)
    async with CNIClient(socket_of(conf)) as cni:
        if command == "ADD":
            result: Result = await cni.add(req)
            return convert_result(result.to_json(), version)
        if command == "DEL":
            await cni.delete(req)
        elif command == "CHECK":
            await cni.check(req)
        elif command == "STATUS":
            await cni.status()
        elif command == "GC":
            await cni.gc(valid_attachments(conf))
    return None


def run(env: Mapping[str, str], stdin: bytes) -> tuple[int, dict[str, Any] | None]:
    """(exit code, JSON to print) for one invocation; never raises."""
    from netplugins.cni.execproto import request_from_env

    version = CNI_VERSION
    try:
        command, req, conf = request_from_env(env, stdin)
        version = str(conf.get("cniVersion") or CNI_VERSION)
        if command == "VERSION":
            return 0, version_reply(conf)
        import asyncio

        return 0, asyncio.run(call_plugin(command, req, conf))
    except CNIError as e:
        return 1, e.to_json(version)
    except Exception as e:  # the runtime must get an error object, not a traceback
        return 1, IOFailure(f"raykube-cni: {type(e).__name__}: {e}").to_json(version)


def main() -> int:
    code, out = run(os.environ, sys.stdin.buffer.read())
    if out is not None:
        sys.stdout.write(json.dumps(out))
        sys.stdout.flush()
    return code


def launcher_script(python: str = sys.executable) -> str:
    """A ``raykube-cni`` executable for a CNI bin directory: runs this module with ``python``, finding
    the package where it is now (a runtime runs the binary with its own environment, not ours)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return (
        f"#!{python}\n"
        "import sys\n"
        f"sys.path.insert(0, {root!r})\n"
        "from netplugins.cni.shim import main\n"
        "sys.exit(main())\n"
    )


if __name__ == "__main__":
    sys.exit(main())
