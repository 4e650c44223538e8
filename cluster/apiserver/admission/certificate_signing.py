"""CertificateSigningRequest strategy (kube's ``pkg/registry/certificates/certificates``
PrepareForCreate / PrepareForUpdate), run before validation:

- on create, ``spec.username``, ``uid``, ``groups`` and ``extra`` are who asks (after impersonation),
  whatever the body said, and ``status`` starts empty: a requester cannot claim another identity,
  and the signer trusts these fields;
- (kube's ``CertificateSubjectRestriction``) a ``kube-apiserver-client`` request naming
  ``system:masters`` among its organizations is refused (403): that signer never mints admins;
- on update of the object itself, ``spec`` stays as it was (kube ignores changes there silently);
  ``status`` is the status and approval subresources' business.
"""

from __future__ import annotations

import copy
from typing import ClassVar

from cryptography import x509
from cryptography.x509.oid import NameOID

from cluster.apiserver.admission.interfaces import Admitted, Attributes, MutatingPlugin, Operation
from cluster.apiserver.auth.user import MASTERS
from cluster.apiserver.errors import StatusError
from cluster.apiserver.validation.certificates import decode_bytes

GROUP = "certificates.k8s.io"
KIND = "CertificateSigningRequest"
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"


def _organizations(request: object) -> list[str]:
    raw = decode_bytes(request)
    if not raw:
        return []
    try:
        csr = x509.load_pem_x509_csr(raw)
    except ValueError:
        return []  # validation reports it
    return [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


class CertificateSigningRequestStrategy(MutatingPlugin):
    NAME: ClassVar[str] = "CertificateSigningRequestStrategy"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE, Operation.UPDATE})

    async def admit(self, attrs: Attributes) -> Admitted:
        obj = attrs.object
        if attrs.kind != (GROUP, KIND):
            return Admitted(obj)
        if attrs.operation is Operation.CREATE:
            spec = obj.setdefault("spec", {})
            for field in ("username", "uid", "groups", "extra"):
                spec.pop(field, None)
            user = attrs.user
            if user is not None:
                spec.update(user.to_api())
            obj["status"] = {}
            if spec.get("signerName") == KUBE_APISERVER_CLIENT and MASTERS in _organizations(
                spec.get("request")
            ):
                raise StatusError(
                    403,
                    "Forbidden",
                    f'certificatesigningrequests.certificates.k8s.io "{attrs.name}" is forbidden: use of '
                    f"{KUBE_APISERVER_CLIENT} signer with {MASTERS} group is not allowed",
                    details={"name": attrs.name, "group": GROUP, "kind": "certificatesigningrequests"},
                )
        elif attrs.old_object is not None:
            obj["spec"] = copy.deepcopy(attrs.old_object.get("spec") or {})
        return Admitted(obj)
