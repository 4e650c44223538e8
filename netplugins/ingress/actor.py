"""The Ingress controller as a Ray actor (``ingress-controller``, one per cluster, on the head node):
a thin shell around ``IngressController`` and our own nginx master.

``IngressActor(kubeconfig_text, host_ip, options)``: ``options["root_dir"]`` is its private
directory (kubeconfig, ``ports.json``, the nginx prefix ``nginx/``); ``http_port``/``https_port``
(0 or absent: free ports picked once and kept in ``ports.json``, so a restarted actor listens where
the EndpointSlice already points); ``nginx`` (the binary); ``debounce`` (seconds). nginx listens on
``host_ip``. ``ready()`` says where; ``shutdown()`` stops the loop and nginx (gracefully), for
``raykube down``. Restarted by Ray forever; a restarted actor stops the nginx master its
predecessor left (pid file) before starting its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray

from cluster.client.event_recorder import ClientEventWriter, EventRecorder
from cluster.client.rest import ApiClient
from cluster.machinery.files import private_dir, write_private
from netplugins.ingress.config import NginxSettings
from netplugins.ingress.controller import IngressController
from netplugins.ingress.nginx import NginxProcess

log = logging.getLogger("raykube.ingress")

ACTOR_NAME = "ingress-controller"


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def choose_ports(root: Path, host: str, http: int, https: int) -> tuple[int, int]:
    """The ports asked for, else the ones kept in ``ports.json``, else two free ones (kept)."""
    path = root / "ports.json"
    kept: dict[str, int] = {}
    if path.exists():
        kept = json.loads(path.read_text())
    chosen = (http or kept.get("http") or _free_port(host), https or kept.get("https") or _free_port(host))
    write_private(path, json.dumps({"http": chosen[0], "https": chosen[1]}))
    return chosen


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=100)  # type: ignore[call-overload]
class IngressActor:
    """See the module docstring."""

    def __init__(self, kubeconfig_text: str, host_ip: str, options: dict[str, Any]) -> None:
        logging.basicConfig(level=logging.INFO)
        self.root = private_dir(options["root_dir"])
        self.kubeconfig = write_private(self.root / "kubeconfig", kubeconfig_text)
        http, https = choose_ports(
            self.root, host_ip, int(options.get("http_port") or 0), int(options.get("https_port") or 0)
        )
        self.settings = NginxSettings(str(self.root / "nginx"), host_ip, http, https)
        self.options = dict(options)
        self.controller: IngressController | None = None
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        client = ApiClient.from_kubeconfig(str(self.kubeconfig))
        recorder = EventRecorder(
            ClientEventWriter(client),
            socket.gethostname(),
            lambda: datetime.now(UTC),
            component="raykube-ingress",
        )
        self._recorder_task = asyncio.create_task(recorder.run())
        nginx = NginxProcess(self.settings.prefix, self.options.get("nginx"))
        self.controller = IngressController(
            client, nginx, self.settings, recorder, debounce=float(self.options.get("debounce", 0.2))
        )
        await self.controller.start()
        log.info(
            "ingress controller: nginx on %s:%d/%d",
            self.settings.listen_host,
            self.settings.http_port,
            self.settings.https_port,
        )

    async def ready(self) -> dict[str, Any]:
        """``{"host_ip", "http_port", "https_port", "nginx_pid"}`` once nginx serves; restarts a
        controller that failed to start or was shut down."""
        if self._started.done() and (self._started.exception() is not None or self.controller is None):
            self._started = asyncio.get_event_loop().create_task(self._start())
        await asyncio.shield(self._started)
        assert self.controller is not None
        return {
            "host_ip": self.settings.listen_host,
            "http_port": self.settings.http_port,
            "https_port": self.settings.https_port,
            "nginx_pid": self.controller.nginx.pid,
        }

    async def status(self) -> dict[str, Any]:
        """What nginx serves: the Ingresses, reloads, the last refused configuration's message."""
        c = self.controller
        return {
            "served": list(c.model.served) if c and c.model else [],
            "reloads": c.nginx.reloads if c else 0,
            "refused": c.refused if c else None,
            "reconciles": c.reconciles if c else 0,
        }

    async def shutdown(self) -> bool:
        """Stop the control loop and nginx (graceful); ``ready()`` starts them again."""
        controller, self.controller = self.controller, None
        if controller is not None:
            await controller.stop()
            await controller.client.close()
        return True
