"""NodeRestriction: what a node agent (``system:node:<name>`` in ``system:nodes``) may write, on top of
what the Node authorizer lets it reach (kube-apiserver's admission plugin of that name).

* Pods: create only mirror pods (annotation ``kubernetes.io/config.mirror``) bound to itself, owned
  by nothing or by its own Node, referencing no ServiceAccount, Secret, ConfigMap or claim; update
  only the status of pods bound to itself (and not their labels); delete only pods bound to itself;
  evict only pods bound to itself.
* Nodes: only its own Node; never its taints, nor labels under ``node-restriction.kubernetes.io/``
  (on create or update) or other ``kubernetes.io``/``k8s.io`` labels the kubelet does not set itself
  (on update).
* Leases: only its own, in ``kube-node-lease``. CSINodes: only its own. Claims: status only.

* ServiceAccount tokens: only bound to a pod that runs on it (``token_request_refusal``; TokenRequest
  is served outside the registry, so ``subresources`` asks it directly).

Requests of any other user pass untouched. Runs validating, after object validation, and on DELETE
(the registry runs its ``on_delete`` plugins with the stored object).
"""

from __future__ import annotations

from typing import Any, ClassVar

from cluster.apiserver.admission.forbidden import admission_forbidden
from cluster.apiserver.admission.interfaces import Attributes, Operation, ValidatingPlugin
from cluster.apiserver.admission.service_account import MIRROR_ANNOTATION, _references_secrets
from cluster.apiserver.auth.user import node_of
from cluster.apiserver.errors import StatusError

NODE_LEASE_NAMESPACE = "kube-node-lease"
RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"
KUBELET_LABELS = frozenset(
    {"kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os"}
    | {"beta.kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/instance-type"}
    | {"node.kubernetes.io/instance-type", "topology.kubernetes.io/region", "topology.kubernetes.io/zone"}
    | {"failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone"}
)
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _label_namespace(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _in(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    namespace = _label_namespace(key)
    return key in KUBELET_LABELS or any(_in(namespace, ns) for ns in KUBELET_LABEL_NAMESPACES)


def modified_labels(new: dict[str, str], old: dict[str, str]) -> set[str]:
    return {k for k in set(new) | set(old) if new.get(k) != old.get(k)}


def forbidden_labels(modified: set[str], *, update: bool) -> list[str]:
    out = set()
    for key in modified:
        namespace = _label_namespace(key)
        if _in(namespace, RESTRICTION_LABEL_NAMESPACE):
            out.add(key)
        if (
            update
            and (_in(namespace, "kubernetes.io") or _in(namespace, "k8s.io"))
            and not is_kubelet_label(key)
        ):
            out.add(key)
    return sorted(out)


def _node_name(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("spec") or {}).get("nodeName") or "")


def _references_config_maps(spec: dict[str, Any]) -> bool:
    for volume in spec.get("volumes") or []:
        if volume.get("configMap") is not None:
            return True
        if any(s.get("configMap") is not None for s in (volume.get("projected") or {}).get("sources") or []):
            return True
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            if any((e.get("valueFrom") or {}).get("configMapKeyRef") for e in container.get("env") or []):
                return True
            if any(e.get("configMapRef") for e in container.get("envFrom") or []):
                return True
    return False


def token_request_refusal(node: str, ref: dict[str, Any], pod: dict[str, Any] | None) -> str | None:
    """Why a node's TokenRequest with bound object ``ref`` (``pod``: the Pod it names, read by the
    caller; a missing one is the caller's 404) is refused, or None (kube's ``admitServiceAccount``)."""
    if ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
        return "node requested token not bound to a pod"
    if not ref.get("uid"):
        return "node requested token with a pod binding without a uid"
    uid = ((pod or {}).get("metadata") or {}).get("uid", "")
    if ref["uid"] != uid:
        return (
            f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record ({uid}). "
            "The object might have been deleted and then recreated"
        )
    if _node_name(pod) != node:
        return "node requested token bound to a pod scheduled on a different node"
    return None


class NodeRestriction(ValidatingPlugin):
    NAME: ClassVar[str] = "NodeRestriction"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset(
        {Operation.CREATE, Operation.UPDATE, Operation.DELETE}
    )

    async def validate(self, attrs: Attributes) -> None:
        node = node_of(attrs.user) if attrs.user is not None else None
        if node is None:
            return
        kind = attrs.kind
        if kind == ("", "Pod"):
            self._pod(node, attrs)
        elif kind == ("", "Node"):
            self._node(node, attrs)
        elif kind == ("coordination.k8s.io", "Lease"):
            if attrs.namespace != NODE_LEASE_NAMESPACE:
                raise self._deny(
                    attrs, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
                )
            if attrs.name != node:
                raise self._deny(
                    attrs, "can only access node lease with the same name as the requesting node"
                )
        elif kind == ("storage.k8s.io", "CSINode"):
            if attrs.name != node:
                raise self._deny(attrs, "can only access CSINode with the same name as the requesting node")
        elif kind == ("", "PersistentVolumeClaim") and attrs.subresource != "status":
            raise self._deny(attrs, "may only update PVC status")

    @staticmethod
    def _deny(attrs: Attributes, reason: str) -> StatusError:
        return admission_forbidden(attrs, reason)

    def _pod(self, node: str, attrs: Attributes) -> None:
        sub, op = attrs.subresource, attrs.operation
        if sub == "status":
            if op != Operation.UPDATE:
                raise self._deny(attrs, f'unexpected operation "{op.value}"')
            if _node_name(attrs.old_object) != node:
                raise self._deny(
                    attrs,
                    f'node "{node}" can only update pod status for pods with spec.nodeName set to itself',
                )
            old_labels = ((attrs.old_object or {}).get("metadata") or {}).get("labels") or {}
            if ((attrs.object.get("metadata") or {}).get("labels") or {}) != old_labels:
                raise self._deny(attrs, f'node "{node}" cannot update labels through pod status')
            return
        if sub == "eviction":
            if _node_name(attrs.old_object) != node:
                raise self._deny(attrs, f"node {node} can only evict pods with spec.nodeName set to itself")
            return
        if sub:
            raise self._deny(
                attrs, f"unexpected pod subresource \"{sub}\", only 'status' and 'eviction' are allowed"
            )
        if op == Operation.DELETE:
            if _node_name(attrs.old_object or attrs.object) != node:
                raise self._deny(
                    attrs, f'node "{node}" can only delete pods with spec.nodeName set to itself'
                )
            return
        if op != Operation.CREATE:
            raise self._deny(
                attrs,
                f'unexpected operation "{op.value}", node "{node}" can only create and delete mirror pods',
            )
        self._mirror_pod_create(node, attrs)

    def _mirror_pod_create(self, node: str, attrs: Attributes) -> None:
        pod = attrs.object
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if MIRROR_ANNOTATION not in (meta.get("annotations") or {}):
            raise self._deny(
                attrs,
                f'pod does not have "{MIRROR_ANNOTATION}" annotation, '
                f'node "{node}" can only create mirror pods',
            )
        if _node_name(pod) != node:
            raise self._deny(attrs, f'node "{node}" can only create pods with spec.nodeName set to itself')
        owners = meta.get("ownerReferences") or []
        if len(owners) > 1:
            raise self._deny(
                attrs, f'node "{node}" can only create pods with a single owner reference set to itself'
            )
        if owners:
            owner = owners[0]
            if owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node:
                raise self._deny(
                    attrs, f'node "{node}" can only create pods with an owner reference set to itself'
                )
            if not owner.get("controller"):
                raise self._deny(
                    attrs,
                    f'node "{node}" can only create pods with a controller owner reference set to itself',
                )
            if owner.get("blockOwnerDeletion"):
                raise self._deny(
                    attrs, f'node "{node}" must not set blockOwnerDeletion on an owner reference'
                )
        if spec.get("serviceAccountName"):
            raise self._deny(attrs, f'node "{node}" can not create pods that reference a service account')
        if _references_secrets(spec):
            raise self._deny(attrs, f'node "{node}" can not create pods that reference secrets')
        if _references_config_maps(spec):
            raise self._deny(attrs, f'node "{node}" can not create pods that reference configmaps')
        if any(v.get("persistentVolumeClaim") is not None for v in spec.get("volumes") or []):
            raise self._deny(
                attrs, f'node "{node}" can not create pods that reference persistentvolumeclaims'
            )

    def _node(self, node: str, attrs: Attributes) -> None:
        labels = (attrs.object.get("metadata") or {}).get("labels") or {}
        if attrs.operation == Operation.CREATE:
            bad = forbidden_labels(modified_labels(labels, {}), update=False)
            if bad:
                raise self._deny(
                    attrs, f'node "{node}" is not allowed to set the following labels: {", ".join(bad)}'
                )
        if attrs.name != node:
            raise self._deny(attrs, f'node "{node}" is not allowed to modify node "{attrs.name}"')
        if attrs.operation == Operation.UPDATE and attrs.old_object is not None:
            old = attrs.old_object
            if (attrs.object.get("spec") or {}).get("taints") != (old.get("spec") or {}).get("taints"):
                raise self._deny(attrs, f'node "{node}" is not allowed to modify taints')
            old_labels = (old.get("metadata") or {}).get("labels") or {}
            bad = forbidden_labels(modified_labels(labels, old_labels), update=True)
            if bad:
                raise self._deny(attrs, f"is not allowed to modify labels: {', '.join(bad)}")
