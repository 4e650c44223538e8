"""What the conformance kit's checks are written with (kit.py runs them).

A check is a coroutine taking a ``Kit``: the client, the driver's ``Facts`` (asked once per run)
and a cleanup stack, so every volume a check creates is unpublished, unstaged and deleted whatever
happened. Helpers (``create``, ``stage``, ``publish``) register their own undo. A check raises
``CheckFailed`` saying what the driver did and what the spec wants, or ``CheckSkipped`` when the
driver does not advertise the capability the check is about.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from nodeagent.csi import csi_pb2
from nodeagent.csi.client import CSIClient
from nodeagent.csi.errors import CSIError

MIB = 1 << 20
Mode = csi_pb2.VolumeCapability.AccessMode
PluginService = csi_pb2.PluginCapability.Service
CtlRPC = csi_pb2.ControllerServiceCapability.RPC
NodeRPC = csi_pb2.NodeServiceCapability.RPC


class CheckFailed(AssertionError):
    """The driver broke the spec; the message says how."""


class CheckSkipped(Exception):
    """The check does not apply to this driver (a capability it does not advertise)."""


@dataclass(frozen=True, slots=True)
class KitConfig:
    """Where node checks put staging and target paths (made below these directories), and the
    size of the volumes checks create."""

    staging_dir: str
    target_dir: str
    volume_size: int = 32 * MIB
    prefix: str = "kit"


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    status: str  # "pass" | "fail" | "skip"
    message: str = ""


@dataclass(slots=True)
class Facts:
    """What the driver says about itself, asked once per run."""

    name: str = ""
    manifest: dict[str, str] = field(default_factory=dict)
    plugin_caps: set[int] = field(default_factory=set)
    controller_caps: set[int] = field(default_factory=set)
    node_caps: set[int] = field(default_factory=set)
    node_id: str = ""
    topology: dict[str, str] = field(default_factory=dict)


Check = Callable[["Kit"], Awaitable[None]]
_seq = itertools.count()


class Checks(dict[str, Check]):
    """A module's checks by name, in the order they are defined; ``@checks.add(name)`` registers."""

    def add(self, name: str) -> Callable[[Check], Check]:
        def register(fn: Check) -> Check:
            if name in self:
                raise ValueError(f"two kit checks are called {name!r}")
            self[name] = fn
            return fn

        return register


def mount_capability(mode: int = Mode.SINGLE_NODE_WRITER) -> csi_pb2.VolumeCapability:
    access = Mode(mode=mode)  # type: ignore[arg-type]
    return csi_pb2.VolumeCapability(mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=access)


class Kit:
    """One check's view of the driver: the client, the facts, and a cleanup stack."""

    def __init__(self, client: CSIClient, config: KitConfig, facts: Facts) -> None:
        self.client = client
        self.config = config
        self.facts = facts
        self._cleanups: list[tuple[str, Callable[[], Awaitable[Any]]]] = []

    # ---- capabilities ----

    def need_controller(self, *caps: int) -> None:
        if PluginService.CONTROLLER_SERVICE not in self.facts.plugin_caps:
            raise CheckSkipped("the plugin has no CONTROLLER_SERVICE")
        for cap in caps:
            if cap not in self.facts.controller_caps:
                raise CheckSkipped(f"controller capability {CtlRPC.Type.Name(cap)} not advertised")

    def need_node(self, *caps: int) -> None:
        for cap in caps:
            if cap not in self.facts.node_caps:
                raise CheckSkipped(f"node capability {NodeRPC.Type.Name(cap)} not advertised")

    @property
    def stages(self) -> bool:
        return NodeRPC.STAGE_UNSTAGE_VOLUME in self.facts.node_caps

    # ---- calls ----

    async def call(self, method: str, request: Any) -> Any:
        try:
            return await self.client.call(method, request)
        except CSIError as e:
            raise CheckFailed(f"{method} failed: {e}") from None

    async def expect_error(self, method: str, request: Any, *codes: grpc.StatusCode, why: str) -> CSIError:
        """Call ``method`` and require it to fail with one of ``codes``."""
        names = " or ".join(c.name for c in codes)
        try:
            await self.client.call(method, request)
        except CSIError as e:
            if e.code not in codes:
                raise CheckFailed(f"{method} {why}: want {names}, got {e}") from None
            return e
        raise CheckFailed(f"{method} {why}: want {names}, but it succeeded")

    def name(self, what: str = "vol") -> str:
        return f"{self.config.prefix}-{what}-{os.getpid()}-{time.monotonic_ns() % 10**9}-{next(_seq)}"

    def path(self, parent: str, what: str) -> str:
        """A fresh path below ``parent`` whose parent exists (what a CO guarantees)."""
        base = os.path.join(parent, self.name(what))
        os.makedirs(base, exist_ok=True)
        self.defer(f"remove {base}", lambda: _rmtree_quiet(base))
        return os.path.join(base, "mount")

    def defer(self, what: str, fn: Callable[[], Awaitable[Any]]) -> None:
        self._cleanups.append((what, fn))

    async def cleanup(self) -> list[str]:
        """Undo in reverse order; the messages of steps that failed."""
        problems = []
        while self._cleanups:
            what, fn = self._cleanups.pop()
            try:
                await fn()
            except CSIError as e:
                if e.code != grpc.StatusCode.NOT_FOUND:
                    problems.append(f"{what}: {e}")
            except OSError as e:
                problems.append(f"{what}: {e}")
        return problems

    async def create(self, name: str | None = None, size: int | None = None, **fields: Any) -> csi_pb2.Volume:
        """CreateVolume (one SINGLE_NODE_WRITER mount capability unless given), deleted at cleanup."""
        self.need_controller(CtlRPC.CREATE_DELETE_VOLUME)
        fields.setdefault("volume_capabilities", [mount_capability()])
        if size is not None or "capacity_range" not in fields:
            fields["capacity_range"] = csi_pb2.CapacityRange(required_bytes=size or self.config.volume_size)
        request = csi_pb2.CreateVolumeRequest(name=name or self.name(), **fields)
        volume: csi_pb2.Volume = (await self.call("CreateVolume", request)).volume
        if not volume.volume_id:
            raise CheckFailed("CreateVolume returned a volume without volume_id")
        self.defer(
            f"delete {volume.volume_id}",
            lambda: self.client.call("DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id)),
        )
        return volume

    async def stage(self, volume: csi_pb2.Volume, cap: csi_pb2.VolumeCapability | None = None) -> str:
        """NodeStageVolume at a fresh path (unstaged at cleanup); "" for a driver that does not stage."""
        if not self.stages:
            return ""
        path = self.path(self.config.staging_dir, "staging")
        os.makedirs(path, exist_ok=True)
        request = csi_pb2.NodeStageVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=path,
            volume_capability=cap or mount_capability(),
            volume_context=dict(volume.volume_context),
        )
        await self.call("NodeStageVolume", request)
        self.defer(
            f"unstage {volume.volume_id} from {path}",
            lambda: self.client.call(
                "NodeUnstageVolume",
                csi_pb2.NodeUnstageVolumeRequest(volume_id=volume.volume_id, staging_target_path=path),
            ),
        )
        return path

    def publish_request(
        self, volume: csi_pb2.Volume, staging: str, target: str, *, readonly: bool = False, mode: int = 0
    ) -> csi_pb2.NodePublishVolumeRequest:
        return csi_pb2.NodePublishVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=staging,
            target_path=target,
            volume_capability=mount_capability(mode or Mode.SINGLE_NODE_WRITER),
            readonly=readonly,
            volume_context=dict(volume.volume_context),
        )

    async def publish(self, volume: csi_pb2.Volume, staging: str, *, readonly: bool = False) -> str:
        """NodePublishVolume at a fresh target (unpublished at cleanup)."""
        target = self.path(self.config.target_dir, "target")
        await self.call("NodePublishVolume", self.publish_request(volume, staging, target, readonly=readonly))
        self.defer(
            f"unpublish {volume.volume_id} from {target}",
            lambda: self.client.call(
                "NodeUnpublishVolume",
                csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=target),
            ),
        )
        return target


async def _rmtree_quiet(path: str) -> None:
    # only empty directories: a target the driver failed to unmount must not lose its data
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)


async def gather_facts(client: CSIClient) -> Facts:
    """Ask the driver who it is and what it can do (each capability RPC it lacks counts as none)."""
    facts = Facts()
    info = await client.call("GetPluginInfo", csi_pb2.GetPluginInfoRequest())
    facts.name, facts.manifest = info.name, dict(info.manifest)
    with contextlib.suppress(CSIError):
        caps = await client.call("GetPluginCapabilities", csi_pb2.GetPluginCapabilitiesRequest())
        facts.plugin_caps = {c.service.type for c in caps.capabilities if c.HasField("service")}
    if PluginService.CONTROLLER_SERVICE in facts.plugin_caps:
        caps = await client.call("ControllerGetCapabilities", csi_pb2.ControllerGetCapabilitiesRequest())
        facts.controller_caps = {c.rpc.type for c in caps.capabilities}
    with contextlib.suppress(CSIError):
        caps = await client.call("NodeGetCapabilities", csi_pb2.NodeGetCapabilitiesRequest())
        facts.node_caps = {c.rpc.type for c in caps.capabilities}
    with contextlib.suppress(CSIError):
        node = await client.call("NodeGetInfo", csi_pb2.NodeGetInfoRequest())
        facts.node_id, facts.topology = node.node_id, dict(node.accessible_topology.segments)
    return facts
