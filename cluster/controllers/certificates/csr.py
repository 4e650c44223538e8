"""Pure helpers for CertificateSigningRequests shared by the signing and approving controllers:
reading the PKCS#10 request, the conditions, and kube's per-signer rules
(``k8s.io/api/certificates/v1`` helpers ``ValidateKubeletClientCSR`` and the kubelet-serving check).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
SIGNERS = (KUBE_APISERVER_CLIENT, KUBELET_CLIENT, KUBELET_SERVING)
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"

_KUBELET_CLIENT_USAGES = (
    {"digital signature", "client auth"},
    {"digital signature", "key encipherment", "client auth"},
)
_KUBELET_SERVING_USAGES = (
    {"digital signature", "server auth"},
    {"digital signature", "key encipherment", "server auth"},
)
_CLIENT_USAGES = {"client auth", "digital signature", "key encipherment"}


class NotForSigner(ValueError):
    """The request does not meet its signer's rules (the text becomes the Failed condition's message)."""


def spec(csr: Mapping[str, Any]) -> dict[str, Any]:
    return dict(csr.get("spec") or {})


def conditions(csr: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [c for c in ((csr.get("status") or {}).get("conditions") or []) if isinstance(c, dict)]


def has_condition(csr: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status", "True") == "True" for c in conditions(csr))


def is_approved(csr: Mapping[str, Any]) -> bool:
    """Approved and not Denied (kube's ``IsCertificateRequestApproved``)."""
    return has_condition(csr, "Approved") and not has_condition(csr, "Denied")


def parse_request(csr: Mapping[str, Any]) -> x509.CertificateSigningRequest:
    try:
        raw = base64.b64decode(spec(csr).get("request") or "")
        return x509.load_pem_x509_csr(raw)
    except ValueError:
        raise NotForSigner("PEM block type must be CERTIFICATE REQUEST") from None


def subject_parts(req: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    """(common name, organizations) of the request's subject."""
    cn = [str(a.value) for a in req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (cn[0] if cn else ""), orgs


def _sans(req: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _usage_text(usages: set[str]) -> str:
    return "[" + " ".join(sorted(usages)) + "]"


def validate_kubelet_client(req: x509.CertificateSigningRequest, usages: Sequence[str]) -> None:
    """kube's ``ValidateKubeletClientCSR``: O exactly system:nodes, CN system:node:<name>, no SANs,
    usages digital signature + client auth (+ key encipherment)."""
    cn, orgs = subject_parts(req)
    if orgs != [NODES_GROUP]:
        raise NotForSigner("subject organization is not system:nodes")
    sans = _sans(req)
    if sans is not None:
        for kind, label in ((x509.DNSName, "DNS"), (x509.RFC822Name, "Email"), (x509.IPAddress, "IP"),
                            (x509.UniformResourceIdentifier, "URI")):  # fmt: skip
            if sans.get_values_for_type(kind):  # type: ignore[arg-type]
                raise NotForSigner(f"{label} subjectAltNames are not allowed")
    if not cn.startswith(NODE_PREFIX):
        raise NotForSigner("subject common name does not begin with system:node:")
    if set(usages) not in _KUBELET_CLIENT_USAGES or len(set(usages)) != len(usages):
        raise NotForSigner(f"usages did not match {_usage_text(_KUBELET_CLIENT_USAGES[1])}")


def validate_kubelet_serving(req: x509.CertificateSigningRequest, usages: Sequence[str]) -> None:
    cn, orgs = subject_parts(req)
    if orgs != [NODES_GROUP]:
        raise NotForSigner("subject organization is not system:nodes")
    sans = _sans(req)
    dns = sans.get_values_for_type(x509.DNSName) if sans is not None else []
    ips = sans.get_values_for_type(x509.IPAddress) if sans is not None else []
    if not dns and not ips:
        raise NotForSigner("DNS or IP subjectAltName is required")
    if sans is not None and (
        sans.get_values_for_type(x509.RFC822Name) or sans.get_values_for_type(x509.UniformResourceIdentifier)
    ):
        raise NotForSigner("Email and URI subjectAltNames are not allowed")  # fmt: skip
    if not cn.startswith(NODE_PREFIX):
        raise NotForSigner("subject common name does not begin with system:node:")
    if set(usages) not in _KUBELET_SERVING_USAGES:
        raise NotForSigner(f"usages did not match {_usage_text(_KUBELET_SERVING_USAGES[1])}")


def validate_for_signer(csr: Mapping[str, Any]) -> x509.CertificateSigningRequest:
    """The parsed request when it meets its signer's rules; ``NotForSigner`` otherwise."""
    req = parse_request(csr)
    signer = spec(csr).get("signerName")
    usages = [str(u) for u in spec(csr).get("usages") or []]
    if signer == KUBELET_CLIENT:
        validate_kubelet_client(req, usages)
    elif signer == KUBELET_SERVING:
        validate_kubelet_serving(req, usages)
    elif signer == KUBE_APISERVER_CLIENT:
        for usage in usages:
            if usage not in _CLIENT_USAGES:
                raise NotForSigner(f"invalid usage for client certificate: {usage}")
    else:
        raise NotForSigner(f"unsupported signer {signer!r}")
    return req
