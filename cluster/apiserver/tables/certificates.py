"""Table printer for certificates.k8s.io CertificateSigningRequests (``kubectl get csr``): kube's
columns NAME, AGE, SIGNERNAME, REQUESTOR, REQUESTEDDURATION, CONDITION, and its condition summary
(``Denied`` over ``Approved`` over ``Pending``, then ``,Failed`` and ``,Issued``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cluster.apiserver.tables.format import (
    Column,
    Obj,
    TablePrinter,
    age,
    age_column,
    as_dict,
    as_list,
    field_doc,
    human_duration,
    name_column,
    name_of,
)

_SPEC = "V1CertificateSigningRequestSpec"


def condition_summary(csr: Obj) -> str:
    types = {str(as_dict(c).get("type")) for c in as_list(get_status(csr).get("conditions"))}
    status = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        status += ",Failed"
    if get_status(csr).get("certificate"):
        status += ",Issued"
    return status


def get_status(csr: Obj) -> dict[str, Any]:
    return as_dict(csr.get("status"))


def _row(csr: Obj, now: datetime) -> list[Any]:
    spec = as_dict(csr.get("spec"))
    seconds = spec.get("expirationSeconds")
    return [
        name_of(csr),
        age(csr, now),
        str(spec.get("signerName") or "<none>"),
        str(spec.get("username") or ""),
        human_duration(float(seconds)) if isinstance(seconds, int) else "<none>",
        condition_summary(csr),
    ]


def csr_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            age_column(),
            Column("SignerName", "string", field_doc(_SPEC, "signerName")),
            Column("Requestor", "string", field_doc(_SPEC, "request")),
            Column("RequestedDuration", "string", field_doc(_SPEC, "expirationSeconds")),
            Column("Condition", "string", field_doc("V1CertificateSigningRequestStatus", "conditions")),
        ),
        _row,
    )
