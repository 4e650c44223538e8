"""The ``csrcleaner`` controller (kube-controller-manager's): CertificateSigningRequests do not pile
up. As kube's, it deletes a request

- whose issued certificate has expired;
- approved (issued or not), denied or failed more than an hour ago (the condition's
  ``lastUpdateTime``);
- still pending a day after it was created.

:func:`deadline` is pure: when a request becomes garbage (None: never, as far as is known now);
the controller deletes it then, looking again at that time rather than polling every hour.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from cluster.client.errors import ApiError
from cluster.controllers.certificates.csr import conditions
from cluster.controllers.runtime import Controller, ControllerContext

GV = "certificates.k8s.io/v1"
PENDING_EXPIRATION = timedelta(hours=24)
DECIDED_EXPIRATION = timedelta(hours=1)  # approved, denied or failed


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _not_after(csr: Mapping[str, Any]) -> datetime | None:
    pem = (csr.get("status") or {}).get("certificate")
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(base64.b64decode(pem)).not_valid_after_utc
    except ValueError:
        return None


def deadline(csr: Mapping[str, Any]) -> datetime | None:
    """When ``csr`` may be deleted: the earliest of its rules that applies."""
    times: list[datetime] = []
    not_after = _not_after(csr)
    if not_after is not None:
        times.append(not_after)
    decided = False
    for cond in conditions(csr):
        if cond.get("type") in ("Approved", "Denied", "Failed"):
            decided = True
            updated = _time(cond.get("lastUpdateTime"))
            if updated is not None:
                times.append(updated + DECIDED_EXPIRATION)
    if not decided:
        created = _time((csr.get("metadata") or {}).get("creationTimestamp"))
        if created is not None:
            times.append(created + PENDING_EXPIRATION)
    return min(times) if times else None


class CSRCleanerController(Controller):
    NAME = "csrcleaner"
    COMPONENT = "certificate-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.csrs = self.watch(
            GV, "certificatesigningrequests", on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n)
        )

    async def reconcile(self, key: str) -> float | None:
        csr = self.csrs.get(None, key)
        if csr is None:
            return None
        when = deadline(csr)
        if when is None:
            return None
        left = (when - self.clock.now()).total_seconds()
        if left > 0:
            return left
        try:
            await self.client.delete(GV, "certificatesigningrequests", key)
        except ApiError as e:
            if not e.not_found:
                raise
        return None
