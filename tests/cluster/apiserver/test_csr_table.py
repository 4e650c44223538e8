"""``kubectl get csr``: kube's columns and its condition summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cluster.apiserver.tables import printer_for
from cluster.apiserver.tables.certificates import condition_summary

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def csr(conditions: list[str], certificate: str = "", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "c", "creationTimestamp": "2026-12-05T11:00:00Z"},
        "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice", **spec},
        "status": {
            "conditions": [{"type": t, "status": "True"} for t in conditions],
            "certificate": certificate,
        },
    }


@pytest.mark.parametrize(
    ("conditions", "certificate", "want"),
    [
        pytest.param([], "", "Pending", id="pending"),
        pytest.param(["Approved"], "", "Approved", id="approved"),
        pytest.param(["Approved"], "Y2VydA==", "Approved,Issued", id="issued"),
        pytest.param(["Approved", "Failed"], "", "Approved,Failed", id="failed"),
        pytest.param(["Denied"], "", "Denied", id="denied"),
    ],
)
def test_condition_summary(conditions: list[str], certificate: str, want: str) -> None:
    assert condition_summary(csr(conditions, certificate)) == want


def test_columns_and_row() -> None:
    printer = printer_for("certificates.k8s.io", "certificatesigningrequests")
    assert [c.name for c in printer.columns] == [
        "Name",
        "Age",
        "SignerName",
        "Requestor",
        "RequestedDuration",
        "Condition",
    ]
    assert printer.row(csr(["Approved"], expirationSeconds=86400), NOW) == [
        "c",
        "60m",
        "kubernetes.io/kube-apiserver-client",
        "alice",
        "24h",
        "Approved",
    ]
    assert printer.row(csr([]), NOW)[4] == "<none>"
