"""Pod sandboxes: one holder process per pod that owns the pod's namespaces.

A ``Sandbox`` records the CRI config and the holder; ``start_holder`` launches it (see
``isolation.HOLDER_SCRIPT``) and waits for its ``ready`` line, so when RunPodSandbox returns the
network namespace exists with loopback up and the hostname set. Containers join the holder's
namespaces through its pid.

The pod's network beyond loopback comes from the node's network plugin (``network.py``), called by
the runtime once the holder is up; ``node_network`` sandboxes keep the node's network namespace.

Invariants: a sandbox is READY exactly while its holder runs and it was not stopped; stopping kills
the holder's process group (containers are stopped by the caller first); ``created_at`` is set by
the caller's clock.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field

from nodeagent.cri import api_pb2
from nodeagent.runtimes.process import procs
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.network import Attached

READY_TIMEOUT = 10.0


class SandboxStartError(RuntimeError):
    """The holder did not come up."""


@dataclass(slots=True)
class Sandbox:
    id: str
    config: api_pb2.PodSandboxConfig
    created_at: int
    runtime_handler: str = ""
    process: asyncio.subprocess.Process | None = None
    stopped: bool = False
    container_ids: set[str] = field(default_factory=set)
    # The network plugin shares the node's network namespace with every pod (the `host` plugin).
    node_network: bool = False
    network: Attached | None = None  # set once the network plugin's ADD succeeded, cleared by DEL

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    @property
    def ready(self) -> bool:
        return not self.stopped and self.process is not None and self.process.returncode is None

    @property
    def host_network(self) -> bool:
        opts = self.config.linux.security_context.namespace_options
        return opts.network == api_pb2.NODE

    def state(self) -> int:
        return api_pb2.SANDBOX_READY if self.ready else api_pb2.SANDBOX_NOTREADY


async def start_holder(sandbox: Sandbox, isolation: Isolation) -> None:
    """Start the holder and wait until it reports ready; raise ``SandboxStartError`` otherwise."""
    in_node_netns = sandbox.host_network or sandbox.node_network
    argv = isolation.holder_argv(sandbox.config.hostname, host_network=in_node_netns)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    sandbox.process = proc
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT)
    except TimeoutError:
        line = b""
    if line.strip() != b"ready":
        procs.killpg(proc.pid)
        err = b""
        if proc.stderr is not None:
            try:
                err = await asyncio.wait_for(proc.stderr.read(), 1.0)
            except TimeoutError:
                err = b""
        await proc.wait()
        raise SandboxStartError(f"pod sandbox holder failed: {err.decode(errors='replace').strip()}")


async def stop_holder(sandbox: Sandbox) -> None:
    """Kill the holder's process group and reap it. Idempotent."""
    sandbox.stopped = True
    proc = sandbox.process
    if proc is None:
        return
    if proc.returncode is None:
        procs.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()
