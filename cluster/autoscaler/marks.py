"""Which nodes the autoscaler is releasing, where the node-agent deployment can see it: keys in Ray's
GCS key-value store (``raykube-releasing/<node name>`` in the KV namespace of the Ray namespace).

The membership follower re-deploys missing agents on every alive Ray node (a killed agent comes
back); a node being released must not get them again, or Ray never finds it idle. The mark lives in
the GCS, not in the controller manager, so it survives a change of leader, and it is cleared once
Ray no longer lists the node alive (a later machine with the same host name gets its agents).
Blocking calls (GCS round trips, about a millisecond).
"""

from __future__ import annotations

import json
from typing import Any

from ray.experimental.internal_kv import (
    _internal_kv_del,
    _internal_kv_exists,
    _internal_kv_get,
    _internal_kv_list,
    _internal_kv_put,
)

PREFIX = "raykube-releasing/"
REQUEST_KEY = "raykube-autoscaler/request"  # the standing request_resources, for ``raykube status``


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


def record_request(ray_namespace: str, bundles: list[dict[str, Any]]) -> None:
    """Keep what the autoscaler last asked Ray for (none: the request was cleared)."""
    ns = _kv_namespace(ray_namespace)
    if bundles:
        _internal_kv_put(REQUEST_KEY, json.dumps(bundles).encode(), overwrite=True, namespace=ns)
    else:
        _internal_kv_del(REQUEST_KEY, namespace=ns)


def standing_request(ray_namespace: str) -> list[dict[str, Any]] | None:
    """The bundles of the autoscaler's standing request, or None when there is none."""
    raw = _internal_kv_get(REQUEST_KEY, namespace=_kv_namespace(ray_namespace))
    return list(json.loads(raw)) if raw else None
