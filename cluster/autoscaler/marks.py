"""Which nodes the autoscaler is releasing, where the node-agent deployment can see it: keys in Ray's
GCS key-value store (``raykube-releasing/<node name>`` in the KV namespace of the Ray namespace).

The membership follower re-deploys missing agents on every alive Ray node (a killed agent comes
back); a node being released must not get them again, or Ray never finds it idle. The mark lives in
the GCS, not in the controller manager, so it survives a change of leader, and it is cleared once
Ray no longer lists the node alive (a later machine with the same host name gets its agents).
Blocking calls (GCS round trips, about a millisecond).
"""

from __future__ import annotations

from ray.experimental.internal_kv import (
    _internal_kv_del,
    _internal_kv_exists,
    _internal_kv_list,
    _internal_kv_put,
)

PREFIX = "raykube-releasing/"


def _kv_namespace(ray_namespace: str) -> str:
    return f"raykube-{ray_namespace}"


def mark_releasing(ray_namespace: str, node: str) -> None:
    _internal_kv_put(PREFIX + node, b"1", overwrite=True, namespace=_kv_namespace(ray_namespace))


def is_marked_releasing(ray_namespace: str, node: str) -> bool:
    return bool(_internal_kv_exists(PREFIX + node, namespace=_kv_namespace(ray_namespace)))


def marked_releasing(ray_namespace: str) -> set[str]:
    keys = _internal_kv_list(PREFIX, namespace=_kv_namespace(ray_namespace))
    return {k.decode()[len(PREFIX) :] for k in keys}


def unmark_releasing(ray_namespace: str, node: str) -> None:
    _internal_kv_del(PREFIX + node, namespace=_kv_namespace(ray_namespace))
