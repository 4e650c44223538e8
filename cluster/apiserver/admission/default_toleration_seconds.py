"""DefaultTolerationSeconds: kube-apiserver's admission plugin of that name.

A new pod that does not already tolerate the NoExecute taints the node lifecycle controller puts on a
node that stops being Ready (``node.kubernetes.io/not-ready``) or stops reporting
(``node.kubernetes.io/unreachable``) gets a toleration for each, ``operator: Exists`` with
``tolerationSeconds: 300``: so its pods are evicted by the taint eviction controller five minutes after
the node goes bad instead of at once (no toleration) or never (a toleration without seconds).

A toleration counts as tolerating a taint key when its key is that key or empty (an empty key with
``Exists`` tolerates everything) and its effect is ``NoExecute`` or empty (every effect), as kube
checks. Runs on CREATE only; the object is changed in place (it is the chain's own copy).
"""

from __future__ import annotations

from typing import Any, ClassVar

from cluster.apiserver.admission.interfaces import Admitted, Attributes, MutatingPlugin, Operation

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_SECONDS = 300


def default_toleration(key: str, seconds: int = DEFAULT_SECONDS) -> dict[str, Any]:
    return {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}


def tolerates_no_execute(toleration: dict[str, Any], key: str) -> bool:
    """Whether ``toleration`` already covers the NoExecute taint ``key`` (kube's test: key equal or
    empty, effect NoExecute or empty)."""
    return toleration.get("key") in (None, "", key) and toleration.get("effect") in (None, "", "NoExecute")


def add_default_tolerations(pod: dict[str, Any], seconds: int = DEFAULT_SECONDS) -> dict[str, Any]:
    """Append the missing default tolerations to ``pod`` (in place) and return it."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return pod
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = spec["tolerations"] = []
    if not isinstance(tolerations, list):
        return pod  # malformed: validation reports it
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not any(isinstance(t, dict) and tolerates_no_execute(t, key) for t in tolerations):
            tolerations.append(default_toleration(key, seconds))
    return pod


class DefaultTolerationSeconds(MutatingPlugin):
    NAME: ClassVar[str] = "DefaultTolerationSeconds"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE})

    def __init__(self, seconds: int = DEFAULT_SECONDS) -> None:
        self.seconds = seconds

    async def admit(self, attrs: Attributes) -> Admitted:
        if attrs.kind != ("", "Pod") or attrs.subresource:
            return Admitted(attrs.object)
        return Admitted(add_default_tolerations(attrs.object, self.seconds))
