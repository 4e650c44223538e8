"""Pure rendering of containerd's config.toml (version 2) and the pod network's CNI conflist.

Role: from a root directory and a few node parameters, compute every path containerd will use and the
text of its configuration. No I/O here; `supervisor.py` writes the files.

Invariants:
- Everything containerd writes by itself lives under `root_dir`: root, state, the gRPC/ttrpc sockets,
  the `opt` plugin path (otherwise /opt/containerd), runc's state `Root`, the CNI conf dir and the
  host-local IPAM data dir. What still lands outside is listed in `cleanup.py`.
- `restrict_oom_score_adj = true` always: this machine lacks CAP_SYS_RESOURCE, and without it runc
  fails every sandbox (CRI asks for oom_score_adj -998).
- The CNI network name is derived from the bridge name (`raykube-<bridge>`), so the libcni cache
  entries in /var/lib/cni/results that this instance creates can be told apart from anyone else's.
- Two ways to network pods: containerd's own bridge conflist (`render_conflist`, reference plugins
  from /usr/lib/cni), or, when the node serves a raykube network plugin, one entry of type
  `raykube-cni` naming the plugin's socket (`render_shim_conflist`); then containerd's single
  `bin_dir` is `<root>/cni/bin`, holding the shim and a link to the `loopback` plugin that containerd
  runs itself for every pod (`SHIM_BIN_LINKS`).
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from typing import Any

from nodeagent.images import PAUSE_IMAGE

CNI_BIN_DIR = "/usr/lib/cni"
SHIM_TYPE = "raykube-cni"  # the CNI shim executable's name (netplugins/cni/shim.py)
# Reference plugins containerd itself runs besides the network's list (1.6 adds `lo` with loopback).
SHIM_BIN_LINKS = ("loopback",)
DEFAULT_POD_CIDR = "10.88.0.0/16"
DEFAULT_BRIDGE = "rk-cni0"
CRI_NAMESPACE = "k8s.io"
# Snapshotters we never use; disabling them keeps the boot log quiet and the start fast.
DISABLED_PLUGINS = (
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)


@dataclass(frozen=True, slots=True)
class ContainerdPaths:
    """Where one containerd instance keeps its files, all under `root_dir`."""

    root_dir: str

    def _p(self, *parts: str) -> str:
        return os.path.join(self.root_dir, *parts)

    @property
    def config(self) -> str:
        return self._p("config.toml")

    @property
    def root(self) -> str:
        return self._p("root")

    @property
    def state(self) -> str:
        return self._p("state")

    @property
    def socket(self) -> str:
        return self._p("containerd.sock")

    @property
    def ttrpc_socket(self) -> str:
        return self._p("containerd.sock.ttrpc")

    @property
    def opt(self) -> str:
        return self._p("opt")

    @property
    def runc_root(self) -> str:
        return self._p("runc")

    @property
    def cni_conf_dir(self) -> str:
        return self._p("cni", "net.d")

    @property
    def cni_bin_dir(self) -> str:
        """The CNI bin dir with the raykube-cni shim (used when a network plugin serves the pods)."""
        return self._p("cni", "bin")

    @property
    def ipam_data_dir(self) -> str:
        return self._p("cni", "ipam")

    @property
    def images_dir(self) -> str:
        return self._p("images")

    @property
    def log(self) -> str:
        return self._p("containerd.log")


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """The node's pod network: one Linux bridge, host-local IPAM over `pod_cidr`, hostPort via portmap."""

    pod_cidr: str = DEFAULT_POD_CIDR
    bridge: str = DEFAULT_BRIDGE
    ip_masq: bool = True

    def __post_init__(self) -> None:
        ipaddress.ip_network(self.pod_cidr)  # raises ValueError on a bad CIDR
        if not (0 < len(self.bridge) <= 15) or "/" in self.bridge or " " in self.bridge:
            raise ValueError(f"invalid bridge name {self.bridge!r} (1-15 chars, no '/' or spaces)")

    @property
    def name(self) -> str:
        return f"raykube-{self.bridge}"


def _q(s: str) -> str:
    """A TOML basic string (json's escaping is a subset TOML accepts)."""
    return json.dumps(s)


def render_config(
    paths: ContainerdPaths,
    sandbox_image: str = PAUSE_IMAGE,
    snapshotter: str = "overlayfs",
    runc_binary: str = "",
    cni_bin_dir: str = CNI_BIN_DIR,
) -> str:
    """containerd config.toml, version 2, for the instance rooted at `paths`; CNI plugins are looked up
    in `cni_bin_dir` (containerd has one)."""
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    runc_opts = [f"          Root = {_q(paths.runc_root)}", "          SystemdCgroup = false"]
    if runc_binary:
        runc_opts.append(f"          BinaryName = {_q(runc_binary)}")
    lines = [
        "version = 2",
        f"root = {_q(paths.root)}",
        f"state = {_q(paths.state)}",
        "oom_score = 0",
        "disabled_plugins = [" + ", ".join(_q(p) for p in DISABLED_PLUGINS) + "]",
        "",
        "[grpc]",
        f"  address = {_q(paths.socket)}",
        "",
        "[ttrpc]",
        f"  address = {_q(paths.ttrpc_socket)}",
        "",
        "[debug]",
        '  address = ""',
        '  level = "info"',
        "",
        "[metrics]",
        '  address = ""',
        "",
        "[plugins]",
        '  [plugins."io.containerd.internal.v1.opt"]',
        f"    path = {_q(paths.opt)}",
        "",
        f"  {cri}]",
        f"    sandbox_image = {_q(sandbox_image)}",
        "    restrict_oom_score_adj = true",
        '    stream_server_address = "127.0.0.1"',
        '    stream_server_port = "0"',
        "    enable_selinux = false",
        "    disable_apparmor = true",
        "    max_container_log_line_size = 16384",
        f"    {cri}.containerd]",
        f"      snapshotter = {_q(snapshotter)}",
        '      default_runtime_name = "runc"',
        f"      {cri}.containerd.runtimes.runc]",
        '        runtime_type = "io.containerd.runc.v2"',
        f"        {cri}.containerd.runtimes.runc.options]",
        *runc_opts,
        f"    {cri}.cni]",
        f"      bin_dir = {_q(cni_bin_dir)}",
        f"      conf_dir = {_q(paths.cni_conf_dir)}",
        "      max_conf_num = 1",
        "",
    ]
    return "\n".join(lines)


def render_conflist(net: NetworkSpec, paths: ContainerdPaths) -> dict[str, Any]:
    """The CNI network list (bridge + host-local, portmap, loopback is added by containerd itself)."""
    return {
        "cniVersion": "1.0.0",
        "name": net.name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "ipMasq": net.ip_masq,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": net.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": paths.ipam_data_dir,
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def render_shim_conflist(net: NetworkSpec, network_socket: str) -> dict[str, Any]:
    """The network list when a raykube network plugin serves the node: one `raykube-cni` entry (the
    shim forwards to the plugin's socket), declaring portMappings so containerd passes hostPorts."""
    return {
        "cniVersion": "1.0.0",
        "name": net.name,
        "plugins": [
            {"type": SHIM_TYPE, "socket": network_socket, "capabilities": {"portMappings": True}},
        ],
    }


def conflist_filename(net: NetworkSpec) -> str:
    return f"10-{net.name}.conflist"
