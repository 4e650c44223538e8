"""Drives a raykube store with etcd-sdk-python (``pyetcd``), a maintained etcd v3 client from PyPI.

Run by ``test_store_etcdctl.test_python_etcd_client_over_tls`` as a subprocess: ``python
etcd_sdk_driver.py PREFIX`` with the ``ETCDCTL_*`` variables of ``raykube store env`` in its
environment. It uses one client per endpoint (TLS with the client certificate of those variables),
does what an application does (put, get, range, txn, watch, lease, status, members, compaction) and
prints one JSON object of what it saw; the test checks it. A separate process because pyetcd
registers etcd's ``rpc.proto`` in protobuf's default pool, which our own stubs of the same
packages (``cluster/store/etcdpb``) would clash with in one interpreter.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

import grpc
import pyetcd

TIMEOUT = 30  # seconds per RPC: a hang fails the run, it does not measure anything


def clients() -> list[pyetcd.Etcd3Client]:
    """One client per endpoint of ``ETCDCTL_ENDPOINTS``, over TLS with the client certificate."""
    out = []
    for url in os.environ["ETCDCTL_ENDPOINTS"].split(","):
        parts = urlsplit(url)
        out.append(
            pyetcd.client(
                host=parts.hostname,
                port=parts.port,
                ca_cert=os.environ["ETCDCTL_CACERT"],
                cert_cert=os.environ["ETCDCTL_CERT"],
                cert_key=os.environ["ETCDCTL_KEY"],
                timeout=TIMEOUT,
            )
        )
    return out


def rpc_error(call: Any) -> dict[str, str] | None:
    """The gRPC code and message ``call()`` failed with, or None when it succeeded."""
    try:
        call()
    except grpc.RpcError as err:
        return {"code": err.code().name, "details": err.details() or ""}
    return None


def watch_events(client: pyetcd.Etcd3Client, prefix: str, start: int, writes: Any, count: int) -> list[Any]:
    """``count`` events of a watch on ``prefix`` from revision ``start``; ``writes()`` runs once the
    watch is created (so its events are live ones)."""
    got: queue.Queue[Any] = queue.Queue()
    events, cancel = client.watch_prefix(prefix, start_revision=start)

    def pump() -> None:
        try:
            for event in events:
                got.put(event)
        except Exception as err:  # reported to the reader below
            got.put(err)

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    try:
        while len(seen) < count:
            if len(seen) == 1:
                writes()
            item = got.get(timeout=TIMEOUT)
            if isinstance(item, Exception):
                raise item
            seen.append(
                {
                    "type": type(item).__name__,
                    "key": item.key.decode(),
                    "value": item.value.decode(),
                    "mod_revision": item.mod_revision,
                }
            )
    finally:
        cancel()
    return seen


def main(prefix: str) -> dict[str, Any]:
    every = clients()
    c, other = every[0], every[-1]
    seen: dict[str, Any] = {"endpoints": len(every)}

    first = c.put(f"{prefix}/a", b"1")
    second = c.put(f"{prefix}/a", b"2", prev_kv=True)
    seen["put_revisions"] = [first.header.revision, second.header.revision]
    seen["put_prev_value"] = second.prev_kv.value.decode()
    value, meta = c.get(f"{prefix}/a")
    seen["get"] = {
        "value": value.decode(),
        "create_revision": meta.create_revision,
        "mod_revision": meta.mod_revision,
        "version": meta.version,
    }
    seen["get_old_revision"] = c.get(f"{prefix}/a", revision=first.header.revision)[0].decode()
    # A write through each endpoint, read through every endpoint (linearizable reads).
    for i, writer in enumerate(every):
        writer.put(f"{prefix}/via/{i}", f"from-{i}".encode())
    seen["read_everywhere"] = [
        sorted((m.key.decode(), v.decode()) for v, m in reader.get_prefix(f"{prefix}/via/"))
        for reader in every
    ]
    c.put(f"{prefix}/b", b"B")
    c.put(f"{prefix}/c", b"C")
    seen["range"] = [m.key.decode() for _, m in c.get_range(f"{prefix}/a", f"{prefix}/c")]
    seen["prefix_count"] = c.get_prefix_response(f"{prefix}/", count_only=True).count

    t = c.transactions
    ok, _ = c.transaction(
        compare=[t.value(f"{prefix}/a") == b"2"],
        success=[t.put(f"{prefix}/a", b"3"), t.get(f"{prefix}/b")],
        failure=[t.put(f"{prefix}/failed", b"yes")],
    )
    again, responses = c.transaction(
        compare=[t.value(f"{prefix}/a") == b"2"],
        success=[t.put(f"{prefix}/a", b"4")],
        failure=[t.get(f"{prefix}/a")],
    )
    seen["txn"] = {
        "first": ok,
        "second": again,
        "second_read": [v.decode() for v, _ in responses[0]],
        "failed_key": c.get(f"{prefix}/failed")[0],
    }

    historic = c.put(f"{prefix}/w/1", b"old").header.revision

    def live() -> None:
        other.put(f"{prefix}/w/2", b"new")
        other.delete(f"{prefix}/w/1")

    seen["watch"] = watch_events(c, f"{prefix}/w/", historic, live, 3)
    seen["watch_start"] = historic

    lease = c.lease(60)
    c.put(f"{prefix}/leased", b"L", lease=lease)
    refreshed = list(c.refresh_lease(lease.id))
    info = c.get_lease_info(lease.id)
    seen["lease"] = {
        "granted": lease.ttl,
        "refreshed_ttl": [r.TTL for r in refreshed],
        "info_granted": info.grantedTTL,
        "info_remaining": info.TTL,
        "keys": [k.decode() for k in info.keys],
    }
    lease.revoke()
    seen["lease"]["after_revoke"] = c.get(f"{prefix}/leased")[0]
    seen["lease"]["revoke_again"] = rpc_error(lambda: c.revoke_lease(lease.id))

    status = c.status()
    members = list(c.members)
    seen["status"] = {"version": status.version, "leader": status.leader.id if status.leader else None}
    seen["members"] = [{"id": m.id, "name": m.name, "client_urls": sorted(m.client_urls)} for m in members]

    top = c.put(f"{prefix}/a", b"5").header.revision
    c.compact(top)
    seen["compacted_read"] = rpc_error(lambda: c.get(f"{prefix}/a", revision=top - 1))
    seen["read_at_compaction"] = c.get(f"{prefix}/a", revision=top)[0].decode()
    for client in every:
        client.close()
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
