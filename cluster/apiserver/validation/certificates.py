"""Validation of certificates.k8s.io/v1 CertificateSigningRequests (kube's
``pkg/apis/certificates/validation``): the request is a signed PEM ``CERTIFICATE REQUEST``, usages
are given, known and not repeated, the signer name is ``<domain>/<path>``, a requested duration is at
least ten minutes, and the conditions are well formed (Approved and Denied exclude each other)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from cryptography import x509

from cluster.apiserver.validation.fields import (
    Cause,
    GoLiteral,
    as_dict,
    as_list,
    child,
    dicts,
    duplicate,
    index,
    invalid,
    not_supported,
    required,
)

VALID_USAGES = (
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
)
CONDITION_TYPES = ("Approved", "Denied", "Failed")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ELIDED = GoLiteral("...")
_SIGNER_FORM = "must be a fully qualified domain and path of the form 'example.com/signer-name'"


def _go_bytes(raw: bytes) -> GoLiteral:
    return GoLiteral("[]byte{" + ", ".join(f"0x{b:x}" for b in raw) + "}")


def decode_bytes(value: Any) -> bytes | None:
    """A ``[]byte`` field's wire form (base64) as bytes; None when it is not valid base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_csr(raw: bytes) -> x509.CertificateSigningRequest:
    """The PKCS#10 request in ``raw`` (PEM), its signature checked; ValueError with kube's text."""
    try:
        csr = x509.load_pem_x509_csr(raw)
    except ValueError:
        raise ValueError("PEM block type must be CERTIFICATE REQUEST") from None
    if not csr.is_signature_valid:
        raise ValueError("x509: ECDSA verification failure")
    return csr


def validate_signer_name(field: str, name: Any) -> list[Cause]:
    if not name:
        return [required(field, "")]
    text = str(name)
    domain, sep, path = text.partition("/")
    if not sep or not path or not domain or "." not in domain or not _DNS1123.match(domain):
        return [invalid(field, text, _SIGNER_FORM)]
    if len(text) > 571:
        return [invalid(field, text, "may not be more than 571 characters")]
    return []


def validate_csr(obj: dict[str, Any]) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    request = spec.get("request")
    raw = decode_bytes(request) if request else b""
    try:
        if not raw:
            raise ValueError("PEM block type must be CERTIFICATE REQUEST")
        parse_csr(raw)
    except ValueError as err:
        causes.append(invalid("spec.request", _go_bytes(raw or b""), str(err)))
    usages = as_list(spec.get("usages"))
    if not usages:
        causes.append(required("spec.usages", ""))
    seen: set[str] = set()
    for i, usage in enumerate(usages):
        if usage not in VALID_USAGES:
            causes.append(not_supported(index("spec.usages", i), usage, VALID_USAGES))
    for i, usage in enumerate(usages):
        if usage in seen:
            causes.append(duplicate(index("spec.usages", i), usage))
        seen.add(str(usage))
    if spec.get("signerName") == "kubernetes.io/legacy-unknown":
        causes.append(
            invalid(
                "spec.signerName",
                spec["signerName"],
                "the legacy signerName is not allowed via this API version",
            )
        )
    else:
        causes += validate_signer_name("spec.signerName", spec.get("signerName"))
    seconds = spec.get("expirationSeconds")
    if isinstance(seconds, int) and seconds < 600:
        causes.append(
            invalid(
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration less than 600 seconds (10 minutes)",
            )
        )
    causes += validate_conditions(obj)
    return causes


def validate_conditions(obj: dict[str, Any]) -> list[Cause]:
    path = "status.conditions"
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, cond in enumerate(dicts(as_dict(obj.get("status")).get("conditions"))):
        kind = str(cond.get("type") or "")
        field = index(path, i)
        if not kind:
            causes.append(required(child(field, "type"), ""))
        elif kind in seen and kind in CONDITION_TYPES:
            causes.append(duplicate(child(field, "type"), kind))
        seen.add(kind)
        status = cond.get("status")
        if kind in CONDITION_TYPES and status not in (None, "", "True"):
            causes.append(not_supported(child(field, "status"), status, ["True"]))
        elif status not in (None, "", "True", "False", "Unknown"):
            causes.append(not_supported(child(field, "status"), status, ["False", "True", "Unknown"]))
    if "Approved" in seen and "Denied" in seen:
        for i, cond in enumerate(dicts(as_dict(obj.get("status")).get("conditions"))):
            if cond.get("type") == "Denied":
                causes.append(
                    invalid(
                        child(index(path, i), "type"),
                        "Denied",
                        "Approved and Denied conditions are mutually exclusive",
                    )
                )
    return causes


def validate_csr_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """Once issued, ``status.certificate`` is not replaced; approval conditions stay once given."""
    causes: list[Cause] = []
    old_cert = as_dict(old.get("status")).get("certificate")
    new_cert = as_dict(new.get("status")).get("certificate")
    if old_cert and new_cert != old_cert:
        causes.append(
            invalid("status.certificate", _ELIDED, "updates may not modify existing certificate content")
        )
    old_types = {c.get("type") for c in dicts(as_dict(old.get("status")).get("conditions"))}
    new_types = {c.get("type") for c in dicts(as_dict(new.get("status")).get("conditions"))}
    for kind in ("Approved", "Denied", "Failed"):
        if kind in old_types and kind not in new_types:
            causes.append(
                invalid("status.conditions", _ELIDED, f'updates may not remove a condition of type "{kind}"')
            )
    return causes
