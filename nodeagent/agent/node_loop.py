"""The node's side of the agent: register the Node, post its status, renew its Lease.

``NodeReporter.register()`` creates the Node from ``node_status.node_object`` (or, when it exists,
merges our labels and replaces its status). ``tick()`` is called about every second: it posts the
status every ``status_interval`` (the heartbeat) and at once when a condition's status changes, and
renews the Lease in ``kube-node-lease`` every ``lease_interval`` (creating it when missing, PUT with
the resourceVersion otherwise). Health comes from the runtime's ``Status`` (RuntimeReady,
NetworkReady, with the kubelet's NotReady texts) and an injected ``PressureProbe`` (memory, disk, pid).
Errors are logged and retried on the next tick.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.event_recorder import EventSink, NullEvents
from nodeagent.cri.client import CRIClient, CRIError
from nodeagent.kubelet import events as ev
from nodeagent.kubelet import node_status as ns

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pressure:
    memory: bool = False
    disk: bool = False
    pid: bool = False


PressureProbe = Callable[[], Pressure]


def host_pressure(data_dir: str) -> Pressure:
    """The kubelet's default hard eviction thresholds: memory.available<100Mi, nodefs.available<10%,
    and pids in use above 90% of pid_max."""
    memory = disk = pid = False
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: line.split()[1] for line in f if ":" in line}
        memory = int(info.get("MemAvailable", "1048576")) * 1024 < 100 * 1024 * 1024
    except OSError:
        pass
    try:
        st = os.statvfs(data_dir)
        disk = st.f_blocks > 0 and st.f_bavail / st.f_blocks < 0.10
    except OSError:
        pass
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
        pid = sum(1 for d in os.listdir("/proc") if d.isdigit()) > pid_max * 0.9
    except (OSError, ValueError):
        pass
    return Pressure(memory, disk, pid)


async def runtime_health(cri: CRIClient, pressure: Pressure) -> ns.NodeHealth:
    """NodeHealth from the runtime's Status conditions, with the kubelet's messages."""
    runtime_errors: list[str] = []
    network_errors: list[str] = []
    try:
        resp = await cri.status()
        conds = {c.type: c for c in resp.status.conditions}
        rt = conds.get("RuntimeReady")
        if rt is None or not rt.status:
            reason, message = (rt.reason, rt.message) if rt is not None else ("", "")
            runtime_errors.append(
                f"container runtime not ready: RuntimeReady=false reason:{reason} message:{message}"
            )
        net = conds.get("NetworkReady")
        if net is None or not net.status:
            reason, message = (net.reason, net.message) if net is not None else ("", "")
            network_errors.append(
                f"container runtime network not ready: NetworkReady=false reason:{reason} message:{message}"
            )
    except CRIError as err:
        runtime_errors.append(f"container runtime is down: {err}")
    return ns.NodeHealth(
        memory_pressure=pressure.memory,
        disk_pressure=pressure.disk,
        pid_pressure=pressure.pid,
        runtime_errors=tuple(runtime_errors),
        network_errors=tuple(network_errors),
    )


def _condition_statuses(status: dict[str, Any] | None) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (status or {}).get("conditions") or ()}


class NodeReporter:
    def __init__(
        self,
        api: Any,  # AgentApi
        cri: CRIClient,
        machine: ns.MachineInfo,
        clock: Callable[[], datetime],
        pressure: PressureProbe,
        *,
        status_interval: timedelta = timedelta(seconds=10),
        lease_interval: timedelta = ns.RENEW_INTERVAL,
        events: EventSink | None = None,
        volumes_in_use: Callable[[], Sequence[str]] = lambda: (),
    ) -> None:
        """``volumes_in_use``: the attachable volumes mounted here (``status.volumesInUse``)."""
        self.api = api
        self.cri = cri
        self.machine = machine
        self.clock = clock
        self.pressure = pressure
        self.status_interval = status_interval
        self.lease_interval = lease_interval
        self.node_uid = ""
        self.status: dict[str, Any] | None = None
        self.last_post: datetime | None = None
        self.last_renew: datetime | None = None
        self.lease_renewals = 0
        self.events: EventSink = events or NullEvents()
        self.volumes_in_use = volumes_in_use

    def set_port(self, port: int) -> None:
        self.machine = replace(self.machine, kubelet_port=port)

    async def register(self) -> None:
        now = self.clock()
        health = await runtime_health(self.cri, self.pressure())
        name = self.machine.node_name
        self.events.event(ev.node_ref(name), ev.NORMAL, ev.STARTING_KUBELET, "Starting kubelet.")
        previous: dict[str, Any] | None = None
        try:
            node = await self.api.create("v1", "nodes", None, ns.node_object(self.machine, health, now))
        except ApiError as err:
            if err.status != 409:
                raise
            current = await self.api.get("v1", "nodes", None, name)
            previous = current.get("status")
            await self.api.patch("v1", "nodes", None, name, {"metadata": {"labels": ns.labels(self.machine)}})
            status = ns.node_status(self.machine, health, previous, now)
            node = await self.api.patch_status("v1", "nodes", None, name, status)
        self.node_uid = (node.get("metadata") or {}).get("uid", "")
        self.status = node.get("status")
        self.last_post = now
        self._record_changes(previous, self.status)

    def _record_changes(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """The kubelet's status setters: one event per condition whose status changed (or is new)."""
        before, after = _condition_statuses(old), _condition_statuses(new)
        for ctype, status in after.items():
            reason = ev.node_condition_reason(ctype, status)
            if reason is not None and before.get(ctype) != status:
                message = f"Node {self.machine.node_name} status is now: {reason}"
                self.events.event(ev.node_ref(self.machine.node_name), ev.NORMAL, reason, message)

    async def tick(self) -> None:
        now = self.clock()
        await self._post_status(now)
        if ns.renew_due(self.last_renew, now, self.lease_interval):
            await self._renew_lease(now)

    async def _post_status(self, now: datetime) -> None:
        health = await runtime_health(self.cri, self.pressure())
        status = ns.node_status(self.machine, health, self.status, now)
        status["volumesInUse"] = list(self.volumes_in_use()) or None  # None: the merge patch drops it
        changed = _condition_statuses(status) != _condition_statuses(self.status)
        due = self.last_post is None or now - self.last_post >= self.status_interval
        if not (changed or due):
            return
        node = await self.api.patch_status("v1", "nodes", None, self.machine.node_name, status)
        previous, self.status = self.status, node.get("status") or status
        self._record_changes(previous, self.status)
        self.last_post = now

    async def _renew_lease(self, now: datetime) -> None:
        name = self.machine.node_name
        try:
            lease = await self.api.get("coordination.k8s.io/v1", "leases", ns.LEASE_NAMESPACE, name)
        except ApiError as err:
            if err.status != 404:
                raise
            body = ns.lease_object(name, self.node_uid, now)
            await self.api.create("coordination.k8s.io/v1", "leases", ns.LEASE_NAMESPACE, body)
        else:
            await self.api.update(
                "coordination.k8s.io/v1", "leases", ns.LEASE_NAMESPACE, ns.renewed(lease, name, now)
            )
        self.last_renew = now
        self.lease_renewals += 1
