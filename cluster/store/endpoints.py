"""Where clients find the store's etcd API: the replicas' client URLs and the TLS material to use.

* ``store_endpoints(namespace=..., data_dir=...)``: the client URLs (``https://<node IP>:<port>``),
  by replica id. With a namespace (and Ray connected) every replica actor is asked (``status``), so
  a member added since ``up`` is there too; a replica that does not answer keeps what the store
  directory recorded (``cluster.store.network.ENDPOINTS_MARKER``). With only a data directory, the
  record alone (no Ray needed).
* ``client_tls(pki_dir)`` (``cluster.store.tls``): our components' certificate; an actor on a node
  without the data directory gets the PEMs from whoever created it (the API server: its shipped PKI
  directory has ``apiserver-etcd-client.crt``).
* ``env_text``: ``raykube store env``'s shell lines, so that ``eval "$(raykube store env)"`` points
  ``etcdctl`` (v3 API) at the store with the operator's certificate.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import ray

from cluster.store.actor import REPLICA_PREFIX
from cluster.store.network import Endpoint, recorded_endpoints
from cluster.store.tls import ClientTls, StorePki, client_tls

__all__ = ["ClientTls", "client_tls", "env_text", "live_endpoints", "store_endpoints"]


def live_endpoints(namespace: str, timeout: float = 5.0) -> dict[int, Endpoint]:
    """Replica id -> where it listens, from the replicas that answer within ``timeout`` (blocking;
    Ray must be connected)."""
    handles: list[Any] = []
    names = [
        e["name"]
        for e in ray.util.list_named_actors(all_namespaces=True)
        if e["namespace"] == namespace and e["name"].startswith(REPLICA_PREFIX)
    ]
    for name in names:
        try:
            handles.append(ray.get_actor(name, namespace=namespace))
        except ValueError:
            continue
    refs = [h.status.remote() for h in handles]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout) if refs else ([], [])
    out: dict[int, Endpoint] = {}
    for ref in ready:
        try:
            st = ray.get(ref)
        except Exception:
            continue
        if st.get("client_url"):
            out[int(st["id"])] = Endpoint(
                int(st["id"]), str(st["node_ip"]), int(st["client_port"]), int(st.get("peer_port") or 0)
            )
    return out


def store_endpoints(*, namespace: str | None = None, data_dir: Path | None = None) -> list[str]:
    """The client URLs, ordered by replica id: live ones (``namespace``, Ray connected) over recorded
    ones (``data_dir``). Empty when neither knows any."""
    endpoints: dict[int, Endpoint] = recorded_endpoints(data_dir / "store") if data_dir is not None else {}
    if namespace is not None and ray.is_initialized():
        endpoints.update(live_endpoints(namespace))
    return [endpoints[rid].client_url for rid in sorted(endpoints)]


def env_text(endpoints: list[str], pki_dir: Path) -> str:
    """``export`` lines for etcdctl 3.4: the v3 API, every endpoint, the cluster CA and the
    operator's certificate (``cluster.store.tls``'s ``etcdctl.crt``)."""
    pki = StorePki.in_dir(pki_dir)
    values = [
        ("ETCDCTL_API", "3"),
        ("ETCDCTL_ENDPOINTS", ",".join(endpoints)),
        ("ETCDCTL_CACERT", str(pki.ca_cert)),
        ("ETCDCTL_CERT", str(pki.etcdctl_cert)),
        ("ETCDCTL_KEY", str(pki.etcdctl_key)),
    ]
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values)
