"""What a volume plugin is, for a Python developer: subclass ``CSIPlugin``, hand over the class.

A plugin implements CSI RPCs as coroutines named exactly as the spec's RPCs, each taking the
``csi_pb2.<Name>Request`` and returning the ``csi_pb2.<Name>Response``::

    class MyPlugin(CSIPlugin):
        async def GetPluginInfo(self, request):
            return csi_pb2.GetPluginInfoResponse(name="my.csi.example.com", vendor_version="0.1")

``nodeagent.csi.server.serve`` puts it behind the Identity, Controller and Node services on a unix
socket; an RPC the class does not define answers UNIMPLEMENTED, which is how CSI says "not
supported" (the capability RPCs should agree). ``raykube up --volume-plugin NAME|pkg.module:Class``
picks the plugin for every node; ``load_plugin_class`` resolves that spec.

Contract (the conformance kit ``python -m nodeagent.csi.sanity --socket PATH`` checks it):
- Identity: ``GetPluginInfo`` (name, version) and ``Probe`` are required.
- Every call is idempotent: CreateVolume with a known name returns the same volume (ALREADY_EXISTS
  when the capacity or capabilities differ), DeleteVolume / NodeUnstage / NodeUnpublish of something
  already gone succeed.
- Failures raise ``CSIError(code, message)`` with the code the spec names for the case; any other
  exception reaches the caller as INTERNAL with its text.
- One plugin instance runs per node (in that node's ``csi-<node>`` actor); Controller RPCs for a
  node-local volume are sent to the plugin of the node that will hold it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from nodeagent.csi import rpc

BUILTIN = {
    "hostpath": "nodeagent.csi.hostpath:HostPathPlugin",
}


@dataclass(frozen=True, slots=True)
class CSIContext:
    """Where a plugin runs: its node, a private directory for its state and volumes (kept across
    restarts of the actor), the cluster's ``--volume-plugin`` options, and the node's labels (for
    topology such as ``topology.kubernetes.io/zone``)."""

    node_name: str
    root_dir: str
    options: dict[str, Any] = field(default_factory=dict)
    node_labels: dict[str, str] = field(default_factory=dict)


class CSIPlugin:
    """A CSI driver written in Python; see the module docstring for the contract."""

    def __init__(self, ctx: CSIContext) -> None:
        self.ctx = ctx

    async def start(self) -> None:
        """Prepare (read state, create directories); called once before the socket serves."""

    async def stop(self, purge: bool = False) -> None:
        """Stop background work; with ``purge`` also remove the plugin's node state (its volumes
        under ``ctx.root_dir``; ``raykube down --purge``)."""

    def handler(self, method: str) -> Any:
        """The coroutine function implementing RPC ``method``, or None (answered UNIMPLEMENTED)."""
        if method not in rpc.METHODS:
            return None
        fn = getattr(self, method, None)
        return fn if callable(fn) else None

    def implemented(self) -> list[str]:
        """The RPC names this plugin defines."""
        return [name for name in rpc.METHODS if self.handler(name) is not None]


class PluginLoadError(ValueError):
    """The ``--volume-plugin`` spec names nothing loadable."""


def load_plugin_class(spec: str) -> type[CSIPlugin]:
    """The plugin class for ``--volume-plugin SPEC``: a built-in name (``hostpath``) or
    ``pkg.module:Class``. (``socket:/path`` is not a class: the volume plugin actor handles it.)"""
    path = BUILTIN.get(spec, spec)
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr or "/" in module_name:
        raise PluginLoadError(
            f"unknown volume plugin {spec!r}: choose one of {', '.join(sorted(BUILTIN))}, "
            "an import path like mypkg.module:MyPlugin, or socket:/path/to/csi.sock"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise PluginLoadError(f"cannot import volume plugin module {module_name!r}: {e}") from e
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, CSIPlugin)):
        raise PluginLoadError(f"{spec!r} is not a CSIPlugin subclass (module {module_name!r}, {attr!r})")
    return cls


SOCKET_PREFIX = "socket:"


def load_volume_plugin(kind: str) -> type[CSIPlugin] | None:
    """What ``--volume-plugin KIND`` runs: the plugin class, or None for ``socket:/path`` (a real CSI
    driver already serving there; the volume plugin actor only proxies to it). Raises
    PluginLoadError for anything else."""
    if kind.startswith(SOCKET_PREFIX):
        if not kind.removeprefix(SOCKET_PREFIX).startswith("/"):
            raise PluginLoadError(
                f"volume plugin {kind!r}: give an absolute socket path, socket:/path/to/csi.sock"
            )
        return None
    return load_plugin_class(kind)
