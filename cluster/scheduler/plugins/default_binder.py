"""DefaultBinder: decide the ``Binding`` that assigns a pod to its chosen node.

This core performs no I/O: ``bind`` builds the ``v1.Binding`` object (pod namespace/name/uid, target
node) and records it in the cycle state under ``BINDING_KEY``; the scheduler actor reads it and POSTs
it to ``/api/v1/namespaces/{ns}/pods/{name}/binding``. Binding is idempotent per cycle (rewrites the key).
"""

from __future__ import annotations

from typing import Any

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import SUCCESS, Status

NAME = "DefaultBinder"
BINDING_KEY = NAME + "/binding"


def binding_for(pod: dict[str, Any], node_name: str) -> dict[str, Any]:
    """The ``v1.Binding`` that assigns ``pod`` to ``node_name`` (uid guards against a recreated pod)."""
    meta = pod.get("metadata") or {}
    binding_meta: dict[str, Any] = {
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace") or "default",
    }
    if meta.get("uid"):
        binding_meta["uid"] = meta["uid"]
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": binding_meta,
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    }


def recorded_binding(state: CycleState) -> dict[str, Any] | None:
    """The binding ``bind`` recorded in this cycle, if any."""
    try:
        value = state.read(BINDING_KEY)
    except KeyError:
        return None
    return value if isinstance(value, dict) else None


class DefaultBinder:
    """Bind: record the Binding for the actor to perform."""

    NAME = NAME

    def name(self) -> str:
        return NAME

    def bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status:
        state.write(BINDING_KEY, binding_for(pod, node_name))
        return SUCCESS


def new(args: dict[str, Any] | None, handle: object) -> DefaultBinder:
    """Factory for the registry; DefaultBinder takes no arguments."""
    return DefaultBinder()
