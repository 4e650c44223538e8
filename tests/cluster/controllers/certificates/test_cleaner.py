"""csrcleaner: when a CertificateSigningRequest becomes garbage (kube's rules), and the controller
deleting one whose approval is older than an hour while a fresh one stays."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cluster.apiserver import tls
from cluster.client.errors import ApiError
from cluster.controllers.certificates import CSRCleanerController
from cluster.controllers.certificates.cleaner import deadline
from tests.cluster.controllers.certificates.test_csr_flow import GV, csr_object, make_request
from tests.cluster.controllers.local_apiserver import RunningController, local_apiserver

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def csr(conditions: list[tuple[str, datetime]], created: datetime = T0) -> dict[str, Any]:
    return {
        "metadata": {"name": "c", "creationTimestamp": stamp(created)},
        "status": {
            "conditions": [{"type": t, "status": "True", "lastUpdateTime": stamp(at)} for t, at in conditions]
        },
    }


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        pytest.param(csr([]), T0 + timedelta(hours=24), id="pending a day"),
        pytest.param(csr([("Approved", T0)]), T0 + timedelta(hours=1), id="approved an hour"),
        pytest.param(csr([("Denied", T0)]), T0 + timedelta(hours=1), id="denied an hour"),
        pytest.param(
            csr([("Approved", T0), ("Failed", T0 + timedelta(minutes=5))]),
            T0 + timedelta(hours=1),
            id="earliest",
        ),
        pytest.param({"metadata": {"name": "c"}}, None, id="nothing known"),
    ],
)
def test_deadline(obj: dict[str, Any], want: datetime | None) -> None:
    assert deadline(obj) == want


def test_issued_certificate_expiry_counts(tmp_path: Path) -> None:
    pki = tls.ensure_pki(tmp_path, hosts=[])
    cert_pem, _ = tls.issue_client_cert(pki, "alice", [], days=1, now=T0)
    obj = {
        "metadata": {"name": "c", "creationTimestamp": stamp(T0)},
        "status": {"certificate": base64.b64encode(cert_pem).decode()},
    }
    assert deadline(obj) == T0 + timedelta(days=1)


def test_the_cleaner_deletes_an_old_approval() -> None:
    asyncio.run(_clean())


async def _clean() -> None:
    async with local_apiserver() as client:
        old_request, _ = make_request("old", [])
        new_request, _ = make_request("new", [])
        signer = "kubernetes.io/kube-apiserver-client"
        old = await client.create(
            GV, "certificatesigningrequests", csr_object("old", old_request, signer, ["client auth"])
        )
        await client.create(
            GV, "certificatesigningrequests", csr_object("new", new_request, signer, ["client auth"])
        )
        long_ago = stamp(datetime.now(UTC) - timedelta(hours=2))
        old["status"] = {
            "conditions": [{"type": "Approved", "status": "True", "reason": "R", "lastUpdateTime": long_ago}]
        }
        await client.update(GV, "certificatesigningrequests", old, subresource="approval")
        async with RunningController(client, CSRCleanerController, {}):
            for _ in range(200):
                try:
                    await client.get(GV, "certificatesigningrequests", "old")
                except ApiError as e:
                    assert e.not_found
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the old approved request was not deleted")
        assert (await client.get(GV, "certificatesigningrequests", "new"))["metadata"]["name"] == "new"
