"""A throw-away control plane for the end-to-end benchmarks: the Raft store and the API server in a
fresh Ray namespace and a temporary data directory.

``private_control_plane`` joins the machine's Ray or starts a local one, and on the way out (errors and
Ctrl-C included) kills every actor of its namespace, stops Ray only if it started it (else only
disconnects), and removes the data directory. The caller adds what its benchmark needs (scheduler,
controller manager) with ``cluster.bootstrap`` into the same ``data_dir`` and ``namespace``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import ray

from cluster import bootstrap


@contextlib.contextmanager
def private_control_plane(
    prefix: str, replicas: int = 1, address: str | None = None
) -> Iterator[tuple[Path, str, Path]]:
    """Yield ``(data_dir, ray_namespace, kubeconfig)`` of a store + API server started for the caller,
    on the Ray at ``address`` (default: the machine's, or a local one started here). With several Ray
    nodes the replicas spread over them and every control-plane node gets an API server."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    started_ray = bootstrap.connect_ray(address, data_dir)
    try:
        bootstrap.deploy_store(replicas, data_dir, namespace)
        asyncio.run(bootstrap.wait_until_serving(namespace))
        _, kubeconfig = bootstrap.deploy_apiserver(data_dir, namespace, host="127.0.0.1", port=0)
        yield data_dir, namespace, kubeconfig
    finally:
        with contextlib.suppress(Exception):
            bootstrap.teardown(namespace)
        if started_ray:
            bootstrap.stop_local_ray_if_ours(data_dir)
        elif ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(data_dir, ignore_errors=True)
