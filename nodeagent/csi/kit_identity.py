"""Conformance checks of the Identity service (see kit.py)."""

from __future__ import annotations

import re

from nodeagent.csi import csi_pb2
from nodeagent.csi.kit_support import CheckFailed, Checks, Kit

CHECKS = Checks()
# The spec: at most 63 characters, begins and ends with an alphanumeric, dashes, dots and
# alphanumerics between; reverse domain name notation is recommended.
_NAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,61}[a-zA-Z0-9])?$")


@CHECKS.add("identity.plugin_info")
async def plugin_info(kit: Kit) -> None:
    info = await kit.call("GetPluginInfo", csi_pb2.GetPluginInfoRequest())
    if not _NAME.match(info.name):
        raise CheckFailed(f"GetPluginInfo name {info.name!r} is not a valid CSI driver name (<=63, DNS-like)")
    if not info.vendor_version:
        raise CheckFailed("GetPluginInfo vendor_version is empty; the spec requires it")


@CHECKS.add("identity.capabilities")
async def plugin_capabilities(kit: Kit) -> None:
    caps = await kit.call("GetPluginCapabilities", csi_pb2.GetPluginCapabilitiesRequest())
    for cap in caps.capabilities:
        if cap.HasField("service") and cap.service.type == csi_pb2.PluginCapability.Service.UNKNOWN:
            raise CheckFailed("GetPluginCapabilities lists a service capability of type UNKNOWN")


@CHECKS.add("identity.probe")
async def probe(kit: Kit) -> None:
    response = await kit.call("Probe", csi_pb2.ProbeRequest())
    if response.HasField("ready") and not response.ready.value:
        raise CheckFailed("Probe says not ready after the plugin started serving")
    again = await kit.call("Probe", csi_pb2.ProbeRequest())
    if again.HasField("ready") != response.HasField("ready"):
        raise CheckFailed("two Probe calls disagree on whether readiness is reported")
