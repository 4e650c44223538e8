"""``BridgeNetwork``: the `bridge` network plugin, one per node, flannel-like.

Role: ADD/DEL/CHECK run the CNI reference plugins (``loopback``; then ``bridge`` with ``host-local``
IPAM over the node's podCIDR, and ``portmap``) through ``netplugins.cni.execproto``; the node side
(ip_forward, our nftables table for masquerade, routes or the VXLAN device towards the other nodes)
is reconciled by a background loop from the Node list (API server) or a static peer list.

Invariants:
- Every attachment that may hold an address, veth or port rule is in the ledger (written before the
  reference plugins run, removed after a successful DEL), so DEL needs no prevResult and GC finds
  everything; host-local reservations of containers nobody knows are released by GC too.
- ADD before the node has a podCIDR raises TryAgainLater; ``status`` raises PluginNotAvailable.
- ``stop(purge=True)`` removes what the plugin made on the node: the bridge (only when no
  attachment is left), our routes, the VXLAN device, our nft table, the state directories; it
  restores ip_forward and drops portmap's CNI-HOSTPORT-* chains when they hold no pod's rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import logging
import os
import shutil
from typing import Any

from cluster.client.informer import Informer
from cluster.client.rest import ApiClient
from cluster.machinery.files import private_dir
from cluster.machinery.tasks import cancel_and_wait
from netplugins.bridge import links
from netplugins.bridge.config import (
    NETWORK_NAME,
    VXLAN_OVERHEAD,
    VXLAN_PORT,
    BridgeSettings,
    conflist,
    forward_rules,
    ipam_dir,
    loopback_conflist,
    masquerade_ruleset,
)
from netplugins.bridge.ledger import Entry, Ledger
from netplugins.bridge.topology import (
    VTEP_MAC_ANNOTATION,
    Peer,
    desired,
    internal_ip,
    parse_peers,
    peer_of,
    plan,
    pod_cidr_of,
    vtep_address,
    vtep_mac,
)
from netplugins.cni.execproto import DEFAULT_CNI_PATH, run_conflist
from netplugins.cni.plugin import NetworkPlugin, PluginContext
from netplugins.cni.portmap import remove_hostport_chains
from netplugins.cni.types import (
    Attachment,
    CNIError,
    InvalidEnvironment,
    InvalidNetworkConfig,
    NetRequest,
    PluginNotAvailable,
    Result,
    TryAgainLater,
    UnknownContainer,
)

log = logging.getLogger("raykube.netplugins.bridge")

PASSED_VERSION = "1.0.0"  # what the reference plugins (containernetworking-plugins 1.1) speak
# A port mapping that makes portmap's DEL tear down a container's chains when its real mappings are
# unknown (portmap skips DEL without mappings; teardown goes by the container id, not the ports).
ANY_PORT = [{"hostPort": 1, "containerPort": 1, "protocol": "tcp"}]


def for_reference_plugins(req: NetRequest) -> NetRequest:
    """``req`` with ``IgnoreUnknown=1`` in its CNI_ARGS (the reference plugins refuse the K8S_POD_*
    arguments otherwise; kubelet and containerd pass it the same way)."""
    return dataclasses.replace(req, args={"IgnoreUnknown": "1", **req.args})


def parse_reservation(text: str) -> tuple[str, str]:
    """A host-local reservation file's (container id, ifname); older files hold only the id."""
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[0].strip(), (lines[1].strip() if len(lines) > 1 else "")


def reservations(directory: str) -> list[tuple[str, str, str]]:
    """(ip, container id, ifname) of every address host-local holds in ``directory``."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(directory)):
            try:
                ipaddress.ip_address(name)
                with open(os.path.join(directory, name)) as f:
                    cid, ifname = parse_reservation(f.read())
            except (ValueError, OSError):
                continue
            out.append((name, cid, ifname))
    return out


class BridgeNetwork(NetworkPlugin):
    NAME = "bridge"

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        try:
            self.settings = BridgeSettings.from_options(dict(ctx.options))
        except ValueError as e:
            raise InvalidNetworkConfig(f"bridge plugin options: {e}") from e
        self.ledger = Ledger(ctx.root_dir)
        self.cni_path = str(ctx.options.get("cni_path") or DEFAULT_CNI_PATH)
        self.resync = float(ctx.options.get("resync") or 5.0)
        self.pod_cidr: str | None = self.settings.pod_cidr
        self.node_ip: str = ctx.node_ips[0] if ctx.node_ips else ""
        peers = ctx.options.get("peers")
        self.static_peers: list[Peer] | None = parse_peers(peers) if peers is not None else None
        self.peers: list[Peer] = list(self.static_peers or [])
        self._api: Any = None  # cluster.client.rest.ApiClient when there is an API server
        self._informer: Any = None  # cluster.client.informer.Informer of the Nodes
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()  # a Node changed in a way the network cares about
        self._node_ready = False
        self._node_lock = asyncio.Lock()
        self._mtu = self.settings.mtu
        # Who holds ip_forward=1 in this netns (links.enable_ip_forward): one name per state dir.
        self._forward_holder = hashlib.sha256(os.path.abspath(ctx.root_dir).encode()).hexdigest()[:16]
        self._last_failures: list[str] = []

    # ------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        # Private: the ledger (pods, netns paths) and host-local's reservations live here.
        private_dir(ipam_dir(self.ctx.root_dir))
        if self.ctx.kubeconfig:
            await self._watch_nodes(self.ctx.kubeconfig)
        await self._sync_safely()
        if self._api is not None or self.static_peers is not None:
            self._tasks.append(
                asyncio.create_task(self._sync_loop(), name=f"bridge-sync-{self.ctx.node_name}")
            )

    async def _watch_nodes(self, kubeconfig: str) -> None:
        self._api = ApiClient.from_kubeconfig(kubeconfig)
        self._informer = Informer(self._api, "v1", "nodes")

        def changed(old: dict[str, Any], new: dict[str, Any]) -> None:
            if peer_of(old) != peer_of(new):  # not every status heartbeat
                self._wake.set()

        self._informer.add_handler(
            on_add=lambda _: self._wake.set(), on_update=changed, on_delete=lambda _: self._wake.set()
        )
        self._tasks.append(
            asyncio.create_task(self._informer.run(), name=f"bridge-nodes-{self.ctx.node_name}")
        )
        if not await self._informer.wait_synced(10):
            log.warning("bridge plugin: the Node list did not arrive within 10s; serving as not ready")

    async def stop(self, purge: bool = False) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        if purge:
            await self._purge()
        if self._api is not None:
            await self._api.close()
            self._api = None

    async def status(self) -> None:
        if not self.pod_cidr:
            raise PluginNotAvailable("node has no podCIDR yet", f"node {self.ctx.node_name}")

    # ------------------------------------------------------------------------------------ CNI verbs

    def _conflist(self, pod_cidr: str) -> dict[str, Any]:
        return conflist(self.settings, pod_cidr, self.ctx.root_dir, self._mtu)

    async def add(self, req: NetRequest) -> Result:
        pod_cidr = self.pod_cidr
        if not pod_cidr:
            raise TryAgainLater("node has no podCIDR yet", f"node {self.ctx.node_name}")
        if not req.netns:
            raise InvalidEnvironment("ADD needs the container's network namespace")
        known = self.ledger.get(req.attachment)
        if known is not None and known.result is not None:
            return known.result  # a repeated ADD of the same attachment
        await self._ensure_node()
        entry = Entry(req.container_id, req.ifname, req.netns, req.pod, dict(req.runtime_config))
        self.ledger.put(entry)
        try:
            result = await self._run_add(req, pod_cidr)
        except BaseException:
            # Undo whatever part of the chain ran, so a failed ADD leaves nothing behind.
            try:
                await self._run_del(entry, pod_cidr)
                self.ledger.remove(req.attachment)
            except Exception:
                log.exception("undoing the failed ADD of %s left state; GC will retry", req.pod)
            raise
        self.ledger.put(dataclasses.replace(entry, result=result))
        return result

    async def delete(self, req: NetRequest) -> None:
        entry = self.ledger.get(req.attachment)
        if entry is None:
            entry = Entry(req.container_id, req.ifname, req.netns, req.pod, dict(req.runtime_config))
        entry = dataclasses.replace(
            entry,
            netns=req.netns or entry.netns,
            runtime_config=req.runtime_config or entry.runtime_config,
            result=req.prev_result or entry.result,
        )
        pod_cidr = self._cidr_for(entry)
        if pod_cidr is not None:
            await self._run_del(entry, pod_cidr)
        self.ledger.remove(req.attachment)

    async def check(self, req: NetRequest) -> None:
        entry = self.ledger.get(req.attachment)
        prev = req.prev_result or (entry.result if entry else None)
        if prev is None:
            raise UnknownContainer(f"no attachment {req.container_id}/{req.ifname} on this node")
        netns = req.netns or (entry.netns if entry else "")
        if not netns or not os.path.exists(netns):
            raise UnknownContainer(f"network namespace {netns!r} of {req.container_id} is gone")
        pod_cidr = self.pod_cidr or self._cidr_for(Entry(req.container_id, req.ifname, result=prev))
        if pod_cidr is None:
            raise TryAgainLater("node has no podCIDR yet")
        runtime = req.runtime_config or (entry.runtime_config if entry else {})
        check = dataclasses.replace(
            req,
            netns=netns,
            runtime_config=runtime,
            prev_result=dataclasses.replace(prev, cni_version=PASSED_VERSION),
        )
        await run_conflist(self._conflist(pod_cidr), "CHECK", for_reference_plugins(check), self.cni_path)

    async def gc(self, valid: list[Attachment]) -> None:
        keep = set(valid)
        errors: list[str] = []
        for entry in self.ledger.entries():
            if entry.attachment in keep:
                continue
            try:
                pod_cidr = self._cidr_for(entry)
                if pod_cidr is not None:
                    await self._run_del(entry, pod_cidr)
                self.ledger.remove(entry.attachment)
            except CNIError as e:
                errors.append(f"{entry.container_id}/{entry.ifname}: {e.msg}")
        known = {a.container_id for a in keep} | {e.container_id for e in self.ledger.entries()}
        if self.pod_cidr:
            for ip, cid, ifname in reservations(os.path.join(ipam_dir(self.ctx.root_dir), NETWORK_NAME)):
                if cid in known:
                    continue
                orphan = Entry(cid, ifname or "eth0", runtime_config={"portMappings": ANY_PORT})
                try:
                    await self._run_del(orphan, self.pod_cidr)
                except CNIError as e:
                    errors.append(f"address {ip} of unknown container {cid}: {e.msg}")
        if errors:
            raise CNIError(100, "GC could not release everything", "; ".join(errors))

    # ------------------------------------------------------------------------------------ helpers

    async def _run_add(self, req: NetRequest, pod_cidr: str) -> Result:
        """``lo`` up (loopback) and the bridge/portmap chain, concurrently: they touch different
        interfaces, and ADD's latency is the slower of the two instead of their sum."""
        ref = for_reference_plugins(req)
        lo = dataclasses.replace(ref, ifname="lo", runtime_config={}, prev_result=None)
        outcomes = await asyncio.gather(
            run_conflist(loopback_conflist(), "ADD", lo, self.cni_path),
            run_conflist(self._conflist(pod_cidr), "ADD", ref, self.cni_path),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        result = outcomes[1]
        assert isinstance(result, Result)
        return result

    async def _run_del(self, entry: Entry, pod_cidr: str) -> None:
        prev = entry.result
        req = NetRequest(
            container_id=entry.container_id,
            netns=entry.netns if entry.netns and os.path.exists(entry.netns) else "",
            ifname=entry.ifname,
            runtime_config=entry.runtime_config,
            prev_result=None if prev is None else dataclasses.replace(prev, cni_version=PASSED_VERSION),
        )
        await run_conflist(self._conflist(pod_cidr), "DEL", req, self.cni_path)

    def _cidr_for(self, entry: Entry) -> str | None:
        """The podCIDR an attachment was made in: the node's, else its own address's network."""
        if self.pod_cidr:
            return self.pod_cidr
        for ip in entry.result.ips if entry.result else ():
            return str(ipaddress.ip_interface(ip.address).network)
        return None

    async def _ensure_node(self) -> None:
        """ip_forward on and our nft table present (once per process; the sync loop repairs)."""
        if self._node_ready:
            return
        async with self._node_lock:
            if not self._node_ready:
                await asyncio.to_thread(self._setup_node)
                self._node_ready = True

    def _node_intact(self) -> bool:
        s = self.settings
        return links.nft_table_exists(s.nft_table) and links.iptables_rules_present(
            forward_rules(s.cluster_cidr, s.bridge)
        )

    def _setup_node(self) -> None:
        links.enable_ip_forward(self._forward_holder)
        s = self.settings
        links.apply_nft(masquerade_ruleset(s.nft_table, s.cluster_cidr))
        links.ensure_iptables_rules(forward_rules(s.cluster_cidr, s.bridge))

    # ------------------------------------------------------------------------------------ node sync

    async def _sync_loop(self) -> None:
        """Reconcile when a Node changed, and every ``resync`` seconds (repairs what someone removed)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.resync)
            self._wake.clear()
            await self._sync_safely()

    async def _sync_safely(self) -> None:
        try:
            await self._sync()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bridge plugin: node network sync failed; retrying in %ss", self.resync)

    async def _sync(self) -> None:
        """Read the peers (API or static), learn our podCIDR and address, reconcile the node."""
        own: dict[str, Any] | None = None
        if self._informer is not None:
            if not self._informer.has_synced:
                return
            nodes = self._informer.store.list()
            self.peers = [peer_of(n) for n in nodes]
            own = next(
                (n for n in nodes if (n.get("metadata") or {}).get("name") == self.ctx.node_name), None
            )
            if own is not None:
                if self.settings.pod_cidr is None:
                    self.pod_cidr = pod_cidr_of(own) or None
                if not self.node_ip:
                    self.node_ip = internal_ip(own)
        if not self.node_ip:
            self.node_ip = await asyncio.to_thread(links.default_ip)
        if not self.pod_cidr:
            return
        if self._node_ready and not await asyncio.to_thread(self._node_intact):
            self._node_ready = False
        await self._ensure_node()
        device = self.settings.vxlan_device if self.settings.backend == "vxlan" else None
        if device is not None:
            await asyncio.to_thread(self._setup_vxlan, device)
            await self._publish_vtep_mac(own, device)
        have = await asyncio.to_thread(links.actual_state, device)
        todo = plan(
            desired(self.ctx.node_name, self.peers, self.settings.backend, device or "", self.node_ip), have
        )
        failures = await asyncio.to_thread(links.apply_plan, todo) if not todo.empty else []
        if failures != self._last_failures:  # each sync retries; say it once per change
            for failure in failures:
                log.warning("bridge plugin: %s", failure)
            self._last_failures = failures

    def _setup_vxlan(self, device: str) -> None:
        assert self.pod_cidr
        if not self.node_ip:
            raise RuntimeError("vxlan backend: the node has no address yet")
        links.ensure_vxlan(
            device,
            self.settings.vni,
            VXLAN_PORT,
            self.node_ip,
            vtep_mac(self.ctx.node_name),
            vtep_address(self.pod_cidr),
        )
        if not self.settings.mtu:
            _, underlay = links.device_of(self.node_ip)
            self._mtu = underlay - VXLAN_OVERHEAD

    async def _publish_vtep_mac(self, own: dict[str, Any] | None, device: str) -> None:
        """Keep our Node's VTEP MAC annotation equal to the device's actual MAC."""
        if self._api is None or own is None:
            return
        mac = await asyncio.to_thread(links.link_mac, device)
        current = ((own.get("metadata") or {}).get("annotations") or {}).get(VTEP_MAC_ANNOTATION)
        if current != mac:
            patch = {"metadata": {"annotations": {VTEP_MAC_ANNOTATION: mac}}}
            await self._api.patch("v1", "nodes", self.ctx.node_name, patch)

    # ------------------------------------------------------------------------------------ purge

    async def _purge(self) -> None:
        await asyncio.to_thread(self._purge_node)
        if self._api is not None and self.settings.backend == "vxlan":
            with contextlib.suppress(Exception):
                patch = {"metadata": {"annotations": {VTEP_MAC_ANNOTATION: None}}}
                await self._api.patch("v1", "nodes", self.ctx.node_name, patch)

    def _purge_node(self) -> None:
        s = self.settings
        left = self.ledger.entries()
        steps = [
            ("routes", links.delete_our_routes),
            ("vxlan device", lambda: links.delete_link(s.vxlan_device) if s.backend == "vxlan" else None),
            ("nft table", lambda: links.delete_nft_table(s.nft_table)),
            ("forward rules", lambda: links.delete_iptables_rules(forward_rules(s.cluster_cidr, s.bridge))),
            ("hostport chains", remove_hostport_chains),
        ]
        if left:
            log.warning("purge keeps bridge %s and its state: %d attachments are left", s.bridge, len(left))
        else:
            steps += [
                ("bridge", lambda: links.delete_link(s.bridge) if not links.bridge_ports(s.bridge) else None),
                (
                    "ip_forward",
                    lambda: links.release_ip_forward(self._forward_holder),
                ),
                ("state", lambda: shutil.rmtree(ipam_dir(self.ctx.root_dir), ignore_errors=True)),
                ("ledger", lambda: shutil.rmtree(self.ledger.dir, ignore_errors=True)),
            ]
        for name, step in steps:
            try:
                step()
            except Exception:
                log.exception("bridge plugin purge: %s failed; continuing", name)
        self._node_ready = False
