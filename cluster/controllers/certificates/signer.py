"""The ``csrsigning`` controller (kube-controller-manager's): signs approved
CertificateSigningRequests of the built-in signers (``kube-apiserver-client``,
``kube-apiserver-client-kubelet``, ``kubelet-serving``) with the cluster CA.

For each request that is approved, not failed and not yet issued: a request that breaks its signer's
rules gets a ``Failed`` condition (reason ``SignerValidationFailure``), else a certificate with the
request's subject, key and names, the usages it asked for, valid from five minutes ago for
``spec.expirationSeconds`` (at most ``DEFAULT_DURATION``, never past the CA), written to
``status.certificate`` through the status subresource.

The CA comes from ``ControllerOptions.extra["signing_ca"]`` as (certificate PEM, key PEM); without
it the controller signs nothing and says so once. :func:`sign` is pure given its clock reading.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from cluster.client.errors import ApiError
from cluster.controllers.certificates.csr import (
    SIGNERS,
    NotForSigner,
    has_condition,
    is_approved,
    spec,
    validate_for_signer,
)
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.times import rfc3339

log = logging.getLogger("raykube.controllers")

GV = "certificates.k8s.io/v1"
DEFAULT_DURATION = timedelta(days=365)  # --cluster-signing-duration
BACKDATE = timedelta(minutes=5)

_KEY_USAGES = (
    "digital signature",
    "content commitment",
    "key encipherment",
    "data encipherment",
    "key agreement",
)
_EXTENDED = {
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
}


def sign(
    req: x509.CertificateSigningRequest,
    usages: list[str],
    ca_cert: x509.Certificate,
    ca_key: Any,
    now: datetime,
    seconds: int | None,
) -> bytes:
    """The certificate PEM for ``req``: its subject, public key and subjectAltNames, ``usages``."""
    duration = DEFAULT_DURATION if seconds is None else min(DEFAULT_DURATION, timedelta(seconds=seconds))
    key_usage = x509.KeyUsage(
        digital_signature="digital signature" in usages,
        content_commitment="content commitment" in usages,
        key_encipherment="key encipherment" in usages,
        data_encipherment="data encipherment" in usages,
        key_agreement="key agreement" in usages,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(req.subject)
        .issuer_name(ca_cert.subject)
        .public_key(req.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + duration, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    # As Go's x509 does for a zero KeyUsage: no extension at all (an empty one makes OpenSSL, and so
    # this API server, refuse the certificate for TLS client authentication).
    if any(u in usages for u in _KEY_USAGES):
        builder = builder.add_extension(key_usage, critical=True)
    extended = [_EXTENDED[u] for u in usages if u in _EXTENDED]
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    try:
        sans = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        builder = builder.add_extension(sans, critical=False)
    except x509.ExtensionNotFound:
        pass
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


def load_ca(pems: tuple[str, str] | None) -> tuple[x509.Certificate, Any] | None:
    if not pems:
        return None
    cert = x509.load_pem_x509_certificate(pems[0].encode())
    key = serialization.load_pem_private_key(pems[1].encode(), password=None)
    return cert, key


class CSRSigningController(Controller):
    NAME = "csrsigning"
    COMPONENT = "certificate-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.ca = load_ca(ctx.options.extra.get("signing_ca"))
        self.csrs = self.watch(
            GV, "certificatesigningrequests", on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n)
        )
        if self.ca is None:
            log.warning("csrsigning: no cluster CA was handed to the controller manager; nothing is signed")

    async def reconcile(self, key: str) -> float | None:
        csr = self.csrs.get(None, key)
        if csr is None or self.ca is None:
            return None
        if spec(csr).get("signerName") not in SIGNERS:
            return None
        if (
            not is_approved(csr)
            or has_condition(csr, "Failed")
            or (csr.get("status") or {}).get("certificate")
        ):
            return None
        updated: dict[str, Any] = {**csr, "status": dict(csr.get("status") or {})}
        try:
            req = validate_for_signer(csr)
        except NotForSigner as err:
            now = rfc3339(self.clock.now())
            updated["status"]["conditions"] = [
                *(updated["status"].get("conditions") or []),
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "SignerValidationFailure",
                    "message": str(err),
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
            ]
        else:
            seconds = spec(csr).get("expirationSeconds")
            pem = sign(
                req, [str(u) for u in spec(csr).get("usages") or []], *self.ca, self.clock.now(), seconds
            )
            updated["status"]["certificate"] = base64.b64encode(pem).decode()
        try:
            await self.client.update(GV, "certificatesigningrequests", updated, subresource="status")
        except ApiError as e:
            if e.not_found:
                return None
            raise
        return None
