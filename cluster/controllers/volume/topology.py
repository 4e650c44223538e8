"""Where a PersistentVolume lives: the node whose labels satisfy the PV's ``spec.nodeAffinity``.

Our CSI drivers keep a volume on the node whose plugin created it and record that in the PV's required
node affinity (the topology segment the driver answered, e.g. ``topology.hostpath.csi.raykube.io/node``).
Controllers that must reach the plugin holding a volume (expansion, deletion) ask :func:`node_for_pv`
which node's plugin to call. Matching follows ``v1.NodeSelector``: the terms are ORed, the expressions
of one term ANDed; ``matchFields`` knows ``metadata.name`` only, as Kubernetes does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Obj = Mapping[str, Any]


def _requirement_matches(expr: Obj, value: str | None) -> bool:
    op, values = expr.get("operator"), [str(v) for v in expr.get("values") or ()]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def term_matches(term: Obj, node: Obj) -> bool:
    """Whether one ``NodeSelectorTerm`` selects ``node``; an empty term selects nothing (as in kube)."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    expressions = term.get("matchExpressions") or ()
    fields = term.get("matchFields") or ()
    if not expressions and not fields:
        return False
    for expr in expressions:
        if not _requirement_matches(expr, labels.get(expr.get("key", ""))):
            return False
    for expr in fields:
        value = meta.get("name") if expr.get("key") == "metadata.name" else None
        if not _requirement_matches(expr, value):
            return False
    return True


def pv_node_affinity_matches(pv: Obj, node: Obj) -> bool:
    """Whether ``node`` satisfies the PV's required node affinity; a PV without one fits every node."""
    required = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if not required:
        return True
    return any(term_matches(term, node) for term in required.get("nodeSelectorTerms") or ())


def _ready(node: Obj) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def node_for_pv(pv: Obj, nodes: Iterable[Obj]) -> str | None:
    """The name of the node whose volume plugin holds ``pv``: a node satisfying the PV's required node
    affinity, Ready ones first, then by name (deterministic). A PV without node affinity is reachable
    from any node, so the first Ready node is answered. None when no node fits: the caller reports it
    and retries later (the node may not have joined yet)."""
    fitting = [n for n in nodes if pv_node_affinity_matches(pv, n)]
    if not fitting:
        return None
    best = min(fitting, key=lambda n: (not _ready(n), str((n.get("metadata") or {}).get("name", ""))))
    return str((best.get("metadata") or {}).get("name", "")) or None
