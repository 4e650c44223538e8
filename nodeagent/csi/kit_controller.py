"""Conformance checks of the Controller service (see kit.py): create, delete, validate, list,
capacity and expansion, each call's idempotency and its NOT_FOUND / ALREADY_EXISTS answers."""

from __future__ import annotations

import grpc

from nodeagent.csi import csi_pb2
from nodeagent.csi.kit_support import (
    CheckFailed,
    Checks,
    CheckSkipped,
    CtlRPC,
    Kit,
    PluginService,
    mount_capability,
)

CHECKS = Checks()
UNKNOWN_ID = "kit-no-such-volume"
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@CHECKS.add("controller.capabilities")
async def capabilities(kit: Kit) -> None:
    kit.need_controller()
    caps = await kit.call("ControllerGetCapabilities", csi_pb2.ControllerGetCapabilitiesRequest())
    if any(c.rpc.type == CtlRPC.UNKNOWN for c in caps.capabilities):
        raise CheckFailed("ControllerGetCapabilities lists an RPC capability of type UNKNOWN")


@CHECKS.add("controller.create.missing_fields")
async def create_missing_fields(kit: Kit) -> None:
    kit.need_controller(CtlRPC.CREATE_DELETE_VOLUME)
    cap = [mount_capability()]
    await kit.expect_error(
        "CreateVolume", csi_pb2.CreateVolumeRequest(volume_capabilities=cap), INVALID, why="without a name"
    )
    await kit.expect_error(
        "CreateVolume",
        csi_pb2.CreateVolumeRequest(name=kit.name()),
        INVALID,
        why="without volume_capabilities",
    )


@CHECKS.add("controller.create.delete")
async def create_delete(kit: Kit) -> None:
    volume = await kit.create()
    if volume.capacity_bytes and volume.capacity_bytes < kit.config.volume_size:
        raise CheckFailed(
            f"CreateVolume asked {kit.config.volume_size} bytes, got a volume of {volume.capacity_bytes}"
        )
    await kit.call("DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


@CHECKS.add("controller.create.idempotent")
async def create_idempotent(kit: Kit) -> None:
    name = kit.name()
    first = await kit.create(name)
    second = await kit.create(name)
    if (first.volume_id, first.capacity_bytes) != (second.volume_id, second.capacity_bytes):
        raise CheckFailed(
            f"CreateVolume of {name!r} twice gave {first.volume_id} ({first.capacity_bytes} bytes) then "
            f"{second.volume_id} ({second.capacity_bytes} bytes); the same name must give the same volume"
        )


@CHECKS.add("controller.create.already_exists")
async def create_already_exists(kit: Kit) -> None:
    name = kit.name()
    first = await kit.create(name)
    bigger = max(first.capacity_bytes, kit.config.volume_size) * 2
    request = csi_pb2.CreateVolumeRequest(
        name=name,
        capacity_range=csi_pb2.CapacityRange(required_bytes=bigger),
        volume_capabilities=[mount_capability()],
    )
    await kit.expect_error(
        "CreateVolume", request, grpc.StatusCode.ALREADY_EXISTS, why="with a known name and a larger size"
    )


@CHECKS.add("controller.create.capacity_range")
async def create_capacity_range(kit: Kit) -> None:
    size = kit.config.volume_size
    volume = await kit.create(capacity_range=csi_pb2.CapacityRange(required_bytes=size, limit_bytes=size * 2))
    if volume.capacity_bytes and not size <= volume.capacity_bytes <= size * 2:
        raise CheckFailed(
            f"CreateVolume gave {volume.capacity_bytes} bytes outside the range [{size}, {size * 2}]"
        )
    request = csi_pb2.CreateVolumeRequest(
        name=kit.name(),
        capacity_range=csi_pb2.CapacityRange(required_bytes=size * 2, limit_bytes=size),
        volume_capabilities=[mount_capability()],
    )
    await kit.expect_error(
        "CreateVolume",
        request,
        INVALID,
        grpc.StatusCode.OUT_OF_RANGE,
        why="with limit_bytes below required_bytes",
    )


@CHECKS.add("controller.create.topology")
async def create_topology(kit: Kit) -> None:
    kit.need_controller(CtlRPC.CREATE_DELETE_VOLUME)
    if PluginService.VOLUME_ACCESSIBILITY_CONSTRAINTS not in kit.facts.plugin_caps:
        raise CheckSkipped("the plugin has no VOLUME_ACCESSIBILITY_CONSTRAINTS")
    here = kit.facts.topology
    if not here:
        raise CheckFailed("the plugin has VOLUME_ACCESSIBILITY_CONSTRAINTS but NodeGetInfo gives no topology")
    reqs = csi_pb2.TopologyRequirement(
        requisite=[csi_pb2.Topology(segments=here)], preferred=[csi_pb2.Topology(segments=here)]
    )
    volume = await kit.create(accessibility_requirements=reqs)
    if not volume.accessible_topology:
        raise CheckFailed(
            "CreateVolume gave no accessible_topology though the plugin has topology constraints"
        )
    if not any(all(here.get(k) == v for k, v in t.segments.items()) for t in volume.accessible_topology):
        raise CheckFailed(
            f"CreateVolume for requisite {here} gave accessible_topology "
            f"{[dict(t.segments) for t in volume.accessible_topology]}, which does not include this node"
        )
    key = sorted(here)[0]
    elsewhere = {key: here[key] + "-kit-elsewhere"}
    request = csi_pb2.CreateVolumeRequest(
        name=kit.name(),
        capacity_range=csi_pb2.CapacityRange(required_bytes=kit.config.volume_size),
        volume_capabilities=[mount_capability()],
        accessibility_requirements=csi_pb2.TopologyRequirement(
            requisite=[csi_pb2.Topology(segments=elsewhere)]
        ),
    )
    await kit.expect_error(
        "CreateVolume",
        request,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        INVALID,
        why=f"with a requisite topology {elsewhere} that names no node of this driver",
    )


@CHECKS.add("controller.delete.idempotent")
async def delete_idempotent(kit: Kit) -> None:
    kit.need_controller(CtlRPC.CREATE_DELETE_VOLUME)
    await kit.expect_error("DeleteVolume", csi_pb2.DeleteVolumeRequest(), INVALID, why="without a volume_id")
    await kit.call("DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id=UNKNOWN_ID))
    volume = await kit.create()
    for _ in range(2):
        await kit.call("DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


@CHECKS.add("controller.validate")
async def validate(kit: Kit) -> None:
    kit.need_controller()
    caps = [mount_capability()]
    request = csi_pb2.ValidateVolumeCapabilitiesRequest
    await kit.expect_error(
        "ValidateVolumeCapabilities", request(volume_capabilities=caps), INVALID, why="without id"
    )
    await kit.expect_error(
        "ValidateVolumeCapabilities",
        request(volume_id=UNKNOWN_ID, volume_capabilities=caps),
        grpc.StatusCode.NOT_FOUND,
        why="of an unknown volume",
    )
    volume = await kit.create()
    await kit.expect_error(
        "ValidateVolumeCapabilities", request(volume_id=volume.volume_id), INVALID, why="without capabilities"
    )
    response = await kit.call(
        "ValidateVolumeCapabilities",
        request(volume_id=volume.volume_id, volume_capabilities=caps, volume_context=volume.volume_context),
    )
    if not response.HasField("confirmed"):
        raise CheckFailed(
            f"ValidateVolumeCapabilities did not confirm the capability the volume was created with "
            f"({response.message!r})"
        )


async def _list_all(kit: Kit, page: int) -> list[str]:
    ids: list[str] = []
    token = ""
    for _ in range(10_000):
        response = await kit.call(
            "ListVolumes", csi_pb2.ListVolumesRequest(max_entries=page, starting_token=token)
        )
        if page and len(response.entries) > page:
            raise CheckFailed(f"ListVolumes with max_entries={page} returned {len(response.entries)} entries")
        ids.extend(e.volume.volume_id for e in response.entries)
        token = response.next_token
        if not token:
            return ids
    raise CheckFailed("ListVolumes kept returning a next_token")


@CHECKS.add("controller.list.pages")
async def list_pages(kit: Kit) -> None:
    kit.need_controller(CtlRPC.LIST_VOLUMES, CtlRPC.CREATE_DELETE_VOLUME)
    made = {(await kit.create()).volume_id for _ in range(3)}
    whole = await _list_all(kit, 0)
    paged = await _list_all(kit, 1)
    for what, ids in (("one call", whole), ("pages of one", paged)):
        if len(ids) != len(set(ids)):
            raise CheckFailed(f"ListVolumes ({what}) lists a volume twice: {ids}")
        if not made <= set(ids):
            raise CheckFailed(f"ListVolumes ({what}) misses created volumes {sorted(made - set(ids))}")
    await kit.expect_error(
        "ListVolumes",
        csi_pb2.ListVolumesRequest(starting_token="kit-not-a-token"),
        grpc.StatusCode.ABORTED,
        why="with a starting_token the plugin never issued",
    )


@CHECKS.add("controller.list.after_delete")
async def list_after_delete(kit: Kit) -> None:
    kit.need_controller(CtlRPC.LIST_VOLUMES, CtlRPC.CREATE_DELETE_VOLUME)
    keep, gone = await kit.create(), await kit.create()
    await kit.call("DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id=gone.volume_id))
    ids = set(await _list_all(kit, 0))
    if gone.volume_id in ids or keep.volume_id not in ids:
        raise CheckFailed(
            f"ListVolumes after deleting {gone.volume_id} (keeping {keep.volume_id}) lists {ids}"
        )


@CHECKS.add("controller.capacity")
async def capacity(kit: Kit) -> None:
    kit.need_controller(CtlRPC.GET_CAPACITY)
    caps = [mount_capability()]
    response = await kit.call("GetCapacity", csi_pb2.GetCapacityRequest(volume_capabilities=caps))
    if response.available_capacity < 0:
        raise CheckFailed(f"GetCapacity says {response.available_capacity} bytes available")
    if kit.facts.topology:
        here = csi_pb2.Topology(segments=kit.facts.topology)
        local = await kit.call(
            "GetCapacity", csi_pb2.GetCapacityRequest(volume_capabilities=caps, accessible_topology=here)
        )
        if local.available_capacity <= 0:
            raise CheckFailed("GetCapacity for this node's own topology says nothing is available")


@CHECKS.add("controller.expand")
async def expand(kit: Kit) -> None:
    kit.need_controller(CtlRPC.EXPAND_VOLUME, CtlRPC.CREATE_DELETE_VOLUME)
    request = csi_pb2.ControllerExpandVolumeRequest
    bigger = csi_pb2.CapacityRange(required_bytes=kit.config.volume_size * 2)
    await kit.expect_error(
        "ControllerExpandVolume", request(capacity_range=bigger), INVALID, why="without id"
    )
    await kit.expect_error(
        "ControllerExpandVolume",
        request(volume_id=UNKNOWN_ID, capacity_range=bigger),
        grpc.StatusCode.NOT_FOUND,
        why="of an unknown volume",
    )
    volume = await kit.create()
    await kit.expect_error(
        "ControllerExpandVolume", request(volume_id=volume.volume_id), INVALID, why="without capacity_range"
    )
    sizes = []
    for _ in range(2):
        response = await kit.call(
            "ControllerExpandVolume",
            request(volume_id=volume.volume_id, capacity_range=bigger, volume_capability=mount_capability()),
        )
        sizes.append(response.capacity_bytes)
    if sizes[0] < bigger.required_bytes or sizes[1] != sizes[0]:
        raise CheckFailed(
            f"ControllerExpandVolume to {bigger.required_bytes} bytes twice answered {sizes}; "
            "want at least that, the same both times"
        )
