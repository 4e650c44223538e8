"""The certificates controllers: ``csrsigning`` issues approved CertificateSigningRequests from the
cluster CA, ``csrapproving`` approves node client requests the requester may have approved,
``csrcleaner`` deletes old ones."""

from cluster.controllers.certificates.approver import CSRApprovingController
from cluster.controllers.certificates.cleaner import CSRCleanerController
from cluster.controllers.certificates.signer import CSRSigningController

__all__ = ["CSRApprovingController", "CSRCleanerController", "CSRSigningController"]
