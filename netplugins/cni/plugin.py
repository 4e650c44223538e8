"""What a network plugin is, for a Python developer: subclass ``NetworkPlugin``, hand over the class.

A plugin implements the CNI operations as coroutines over the types of ``netplugins.cni.types``;
``netplugins.cni.server.serve`` puts it behind the gRPC service of ``proto/cni/cni.proto`` on a unix
socket, where the `process` runtime (and, through the CNI shim executable, containerd) calls it.
``raykube up --network NAME|pkg.module:Class`` picks the plugin for every node; ``load_plugin``
resolves that spec (built-in names first, then an import path).

Contract (the conformance kit, ``netplugins.cni.kit``, checks it):
- ``add`` attaches the container's network namespace ``req.netns`` as ``req.ifname`` and returns the
  result; a second ADD of the same attachment may fail or return the same result.
- ``delete`` is idempotent: it succeeds when the attachment, the container or its netns are gone,
  and releases what ADD took (addresses, host ports, rules).
- ``check`` raises a ``CNIError`` when the attachment is missing or differs from ``prev_result``.
- ``status`` raises ``PluginNotAvailable`` while ADD cannot succeed (e.g. the node has no podCIDR
  yet).
- ``gc`` releases every resource whose attachment is not in ``valid``.
Errors are ``CNIError`` (subclasses by code); any other exception reaches the runtime as an I/O
failure (code 5) with its text.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from netplugins.cni.types import Attachment, NetRequest, Result

BUILTIN = {
    "bridge": "netplugins.bridge.plugin:BridgeNetwork",
    "host": "netplugins.host.plugin:HostNetwork",
}


@dataclass(frozen=True, slots=True)
class PluginContext:
    """Where a plugin runs: its node, a private directory for its state (kept across restarts), the
    node's addresses, the cluster's network options (``cluster_cidr``, ``backend``, ``bridge``, ...)
    and, when it runs in a cluster, a kubeconfig path with the node's credentials."""

    node_name: str
    root_dir: str
    node_ips: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    kubeconfig: str | None = None


class NetworkPlugin(ABC):
    """A CNI network plugin served over gRPC; see the module docstring for the contract."""

    NAME: ClassVar[str] = ""
    # True: pods share the node's network namespace (the runtime creates none); ADD only records the
    # pod's host ports and reports the node's address. The `host` plugin.
    NODE_NETWORK: ClassVar[bool] = False

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare (read state, watch the cluster); called once before the socket serves."""

    async def stop(self, purge: bool = False) -> None:  # noqa: B027 - optional hook
        """Stop background work; with ``purge`` also remove node-wide state (bridges, routes, rules)
        that no attachment needs (``raykube down --purge``)."""

    @abstractmethod
    async def add(self, req: NetRequest) -> Result: ...

    @abstractmethod
    async def delete(self, req: NetRequest) -> None: ...

    @abstractmethod
    async def check(self, req: NetRequest) -> None: ...

    async def status(self) -> None:  # noqa: B027 - ready unless a plugin says otherwise
        """Raise ``PluginNotAvailable`` / ``LimitedConnectivity`` when not ready."""

    @abstractmethod
    async def gc(self, valid: list[Attachment]) -> None: ...


class PluginLoadError(ValueError):
    """The ``--network`` (or ``--runtime``) spec names nothing loadable."""


def load_object(spec: str, builtin: dict[str, str], what: str) -> Any:
    """A built-in by name (``builtin[spec]``), else ``module:attribute`` imported; raises
    PluginLoadError with the choices when neither works."""
    path = builtin.get(spec, spec)
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise PluginLoadError(
            f"unknown {what} {spec!r}: choose one of {', '.join(sorted(builtin))} "
            "or give an import path like mypkg.module:MyClass"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise PluginLoadError(f"cannot import {what} module {module_name!r}: {e}") from e
    try:
        return getattr(module, attr)
    except AttributeError as e:
        raise PluginLoadError(f"module {module_name!r} has no {attr!r} ({what} {spec!r})") from e


def load_plugin(spec: str) -> type[NetworkPlugin]:
    """The plugin class for ``--network SPEC``."""
    cls = load_object(spec, BUILTIN, "network plugin")
    if not (isinstance(cls, type) and issubclass(cls, NetworkPlugin)):
        raise PluginLoadError(f"{spec!r} is not a NetworkPlugin subclass")
    return cls
