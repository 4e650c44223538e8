"""The CNI executable protocol, both ways: run a plugin binary, or be one (the shim).

The specification drives a plugin executable with ``CNI_*`` environment variables, the plugin's
network configuration on stdin, and reads a result (exit 0) or an error object (non-zero exit) from
stdout. ``run_conflist`` is libcni's way of running a network configuration list: ADD through the
plugins in order, each given the previous one's result as ``prevResult``; DEL in reverse order;
CHECK in order with the final result. The bridge plugin and the benchmark run the reference plugins
(``/usr/lib/cni``) this way. ``request_from_env`` is the other direction, for the shim executable
that containerd runs and that forwards to a gRPC plugin.

Invariants: a plugin's stdin is its own entry of the list with the list's ``name`` and
``cniVersion``, ``runtimeConfig`` reduced to the capabilities the entry declares, and ``prevResult``
when there is one; an error object on stdout is raised as its ``CNIError`` subclass.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from typing import Any

from netplugins.cni.types import (
    CNIError,
    DecodingFailure,
    InvalidEnvironment,
    InvalidNetworkConfig,
    IOFailure,
    NetRequest,
    Result,
    format_cni_args,
    parse_cni_args,
)

DEFAULT_CNI_PATH = "/usr/lib/cni"
COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")


def plugin_env(command: str, req: NetRequest, cni_path: str) -> dict[str, str]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": req.container_id,
        "CNI_NETNS": req.netns,
        "CNI_IFNAME": req.ifname,
        "CNI_PATH": cni_path,
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }
    if req.args:
        env["CNI_ARGS"] = format_cni_args(req.args)
    return env


def plugin_stdin(
    conflist: Mapping[str, Any], entry: Mapping[str, Any], req: NetRequest, prev: Result | None
) -> bytes:
    conf = dict(entry)
    conf["name"] = conflist["name"]
    conf["cniVersion"] = conflist.get("cniVersion", "1.0.0")
    caps = entry.get("capabilities") or {}
    runtime = {k: v for k, v in req.runtime_config.items() if caps.get(k)}
    if runtime:
        conf["runtimeConfig"] = runtime
    if prev is not None:
        conf["prevResult"] = prev.to_json()
    return json.dumps(conf).encode()


def parse_output(returncode: int, stdout: bytes, stderr: bytes, plugin: str) -> dict[str, Any] | None:
    """The plugin's JSON output (None when it printed nothing), or raise its CNIError."""
    text = stdout.strip()
    try:
        obj = json.loads(text) if text else None
    except ValueError as e:
        if returncode != 0:
            raise IOFailure(
                f"{plugin} failed (exit {returncode})", (stderr or stdout).decode(errors="replace")
            ) from e
        raise DecodingFailure(f"{plugin} printed no JSON", text[:200].decode(errors="replace")) from e
    if returncode != 0:
        if isinstance(obj, dict) and "code" in obj:
            raise CNIError.from_json(obj)
        raise IOFailure(f"{plugin} failed (exit {returncode})", (stderr or stdout).decode(errors="replace"))
    if obj is not None and not isinstance(obj, dict):
        raise DecodingFailure(f"{plugin} printed JSON that is not an object")
    return obj


async def run_plugin(binary: str, env: Mapping[str, str], stdin: bytes) -> dict[str, Any] | None:
    try:
        proc = await asyncio.create_subprocess_exec(
            binary,
            env=dict(env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as e:
        raise InvalidNetworkConfig(f"cannot run CNI plugin {binary}: {e}") from e
    out, err = await proc.communicate(stdin)
    return parse_output(proc.returncode or 0, out, err, os.path.basename(binary))


def _binary(entry: Mapping[str, Any], cni_path: str) -> str:
    kind = entry.get("type")
    if not isinstance(kind, str) or not kind or "/" in kind:
        raise InvalidNetworkConfig(f"plugin entry has no valid type: {dict(entry)!r}")
    for d in cni_path.split(":"):
        path = os.path.join(d, kind)
        if os.access(path, os.X_OK):
            return path
    raise InvalidNetworkConfig(f"CNI plugin {kind!r} not found in {cni_path}")


async def run_conflist(
    conflist: Mapping[str, Any], command: str, req: NetRequest, cni_path: str = DEFAULT_CNI_PATH
) -> Result | None:
    """Run ``command`` (ADD, DEL or CHECK) over the list as libcni does; ADD returns the result."""
    plugins = list(conflist.get("plugins") or [])
    if not plugins or "name" not in conflist:
        raise InvalidNetworkConfig("network configuration list needs a name and plugins")
    env = plugin_env(command, req, cni_path)
    if command == "ADD":
        prev: Result | None = None
        for entry in plugins:
            out = await run_plugin(_binary(entry, cni_path), env, plugin_stdin(conflist, entry, req, prev))
            if out is None:
                raise DecodingFailure(f"{entry['type']} ADD printed no result")
            prev = Result.from_json(out)
        return prev
    if command == "DEL":
        for entry in reversed(plugins):
            await run_plugin(
                _binary(entry, cni_path), env, plugin_stdin(conflist, entry, req, req.prev_result)
            )
        return None
    if command == "CHECK":
        for entry in plugins:
            await run_plugin(
                _binary(entry, cni_path), env, plugin_stdin(conflist, entry, req, req.prev_result)
            )
        return None
    raise InvalidEnvironment(f"run_conflist does not run {command}")


def request_from_env(env: Mapping[str, str], stdin: bytes) -> tuple[str, NetRequest, dict[str, Any]]:
    """The shim's side: (command, request, the plugin configuration from stdin)."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise InvalidEnvironment(f"CNI_COMMAND {command!r} is not one of {', '.join(COMMANDS)}")
    try:
        conf = json.loads(stdin) if stdin.strip() else {}
    except ValueError as e:
        raise DecodingFailure("network configuration on stdin is not JSON", str(e)) from e
    if not isinstance(conf, dict):
        raise DecodingFailure("network configuration on stdin is not a JSON object")
    needs = {"ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"), "DEL": ("CNI_CONTAINERID", "CNI_IFNAME")}
    needs["CHECK"] = needs["ADD"]
    missing = [k for k in needs.get(command, ()) if not env.get(k)]
    if missing:
        raise InvalidEnvironment(f"{command} needs {', '.join(missing)}")
    prev = conf.get("prevResult")
    req = NetRequest(
        container_id=env.get("CNI_CONTAINERID", ""),
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", "eth0"),
        args=parse_cni_args(env.get("CNI_ARGS", "")),
        runtime_config=dict(conf.get("runtimeConfig") or {}),
        prev_result=Result.from_json(prev) if isinstance(prev, dict) else None,
        network_config=conf,
    )
    return command, req, conf
