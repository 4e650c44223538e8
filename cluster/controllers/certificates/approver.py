"""The ``csrapproving`` controller (kube-controller-manager's ``sarapprove``): approves node client
certificate requests (signer ``kube-apiserver-client-kubelet``) that the requester may have
approved, as kube does for nodes joining with a bootstrap token and renewing their certificates:

- ``nodeclient``: the request is for a node client certificate (``system:node:<name>`` in
  ``system:nodes``) and the requester may ``create`` ``certificatesigningrequests/nodeclient``;
- ``selfnodeclient``: as above and the requester is that node (``spec.username`` equals the CN),
  allowed ``create`` on ``certificatesigningrequests/selfnodeclient``.

Each permission is asked with a SubjectAccessReview for the requester recorded in the request's
spec; Kubernetes binds them to ``system:bootstrappers`` (kubeadm) and ``system:nodes``. Anything
else is left for a person (``kubectl certificate approve``).
"""

from __future__ import annotations

import logging
from typing import Any

from cluster.client.errors import ApiError
from cluster.controllers.certificates.csr import (
    KUBELET_CLIENT,
    NotForSigner,
    has_condition,
    parse_request,
    spec,
    subject_parts,
    validate_kubelet_client,
)
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.times import rfc3339

log = logging.getLogger("raykube.controllers")

GV = "certificates.k8s.io/v1"
MESSAGE = "Auto approving kubelet client certificate after SubjectAccessReview."


def recognized(csr: dict[str, Any]) -> list[str]:
    """The subresources whose ``create`` would approve ``csr``: ``selfnodeclient`` first (a node
    renewing its own), then ``nodeclient``; empty when it is not a valid node client request."""
    if spec(csr).get("signerName") != KUBELET_CLIENT:
        return []
    try:
        req = parse_request(csr)
        validate_kubelet_client(req, [str(u) for u in spec(csr).get("usages") or []])
    except NotForSigner:
        return []
    cn, _ = subject_parts(req)
    out = ["selfnodeclient"] if spec(csr).get("username") == cn else []
    return [*out, "nodeclient"]


class CSRApprovingController(Controller):
    NAME = "csrapproving"
    COMPONENT = "certificate-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.csrs = self.watch(
            GV, "certificatesigningrequests", on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n)
        )

    async def _allowed(self, csr: dict[str, Any], subresource: str) -> bool:
        s = spec(csr)
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": s.get("username", ""),
                "uid": s.get("uid", ""),
                "groups": list(s.get("groups") or []),
                "extra": dict(s.get("extra") or {}),
                "resourceAttributes": {
                    "group": "certificates.k8s.io",
                    "resource": "certificatesigningrequests",
                    "verb": "create",
                    "subresource": subresource,
                    "version": "*",
                },
            },
        }
        answer = await self.client.create("authorization.k8s.io/v1", "subjectaccessreviews", review)
        return bool((answer.get("status") or {}).get("allowed"))

    async def reconcile(self, key: str) -> float | None:
        csr = self.csrs.get(None, key)
        if csr is None or has_condition(csr, "Approved") or has_condition(csr, "Denied"):
            return None
        if (csr.get("status") or {}).get("certificate"):
            return None
        for subresource in recognized(csr):
            try:
                allowed = await self._allowed(csr, subresource)
            except ApiError as e:
                log.warning("csrapproving: SubjectAccessReview for %s failed: %s", key, e)
                return 5.0
            if allowed:
                break
        else:
            return None
        now = rfc3339(self.clock.now())
        approved = {**csr, "status": dict(csr.get("status") or {})}
        approved["status"]["conditions"] = [
            *(approved["status"].get("conditions") or []),
            {
                "type": "Approved",
                "status": "True",
                "reason": "AutoApproved",
                "message": MESSAGE,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            },
        ]
        try:
            await self.client.update(GV, "certificatesigningrequests", approved, subresource="approval")
        except ApiError as e:
            if e.not_found:
                return None
            raise
        return None
