"""CertificateSigningRequests end to end without Ray: the real API server over TLS (cluster CA from
``ensure_pki``), a node joining with a bootstrap token submits its client request, the requester is
recorded from the token, an admin approves it through the approval subresource, the csrsigning
controller issues it from the CA, and the certificate authenticates as ``system:node:<name>``.
Plus the signer rules and the approver's recognition as tables."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cluster.apiserver import tls
from cluster.apiserver.auth.authorizer import AlwaysAllow
from cluster.apiserver.server import ApiServer
from cluster.client.errors import ApiError
from cluster.client.rest import ApiClient
from cluster.controllers.certificates import CSRSigningController
from cluster.controllers.certificates.approver import recognized
from cluster.controllers.certificates.csr import NotForSigner, validate_for_signer
from cluster.controllers.certificates.signer import sign
from tests.cluster.controllers.local_apiserver import RunningController, WatchableStore

GV = "certificates.k8s.io/v1"
TOKEN = "abcdef.0123456789abcdef"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"


def make_request(cn: str, orgs: list[str], dns: list[str] = ()) -> tuple[str, bytes]:  # type: ignore[assignment]
    """(base64 of the PEM request, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
    ]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    csr = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode(), key_pem


def csr_object(name: str, request: str, signer: str, usages: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GV,
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": request, "signerName": signer, "usages": usages, **spec},
    }


@pytest.mark.parametrize(
    ("cn", "orgs", "dns", "signer", "usages", "error"),
    [
        pytest.param(
            "system:node:n1",
            ["system:nodes"],
            [],
            KUBELET_CLIENT,
            ["digital signature", "client auth"],
            None,
            id="kubelet client",
        ),
        pytest.param(
            "system:node:n1",
            ["system:nodes"],
            [],
            KUBELET_CLIENT,
            ["digital signature", "key encipherment", "client auth"],
            None,
            id="kubelet client rsa usages",
        ),
        pytest.param(
            "system:node:n1",
            ["system:masters"],
            [],
            KUBELET_CLIENT,
            ["digital signature", "client auth"],
            "subject organization is not system:nodes",
            id="other org",
        ),
        pytest.param(
            "alice",
            ["system:nodes"],
            [],
            KUBELET_CLIENT,
            ["digital signature", "client auth"],
            "subject common name does not begin with system:node:",
            id="not a node",
        ),
        pytest.param(
            "system:node:n1",
            ["system:nodes"],
            ["n1"],
            KUBELET_CLIENT,
            ["digital signature", "client auth"],
            "DNS subjectAltNames are not allowed",
            id="client with SAN",
        ),
        pytest.param(
            "system:node:n1",
            ["system:nodes"],
            [],
            KUBELET_CLIENT,
            ["server auth"],
            "usages did not match",
            id="client usages",
        ),
        pytest.param(
            "system:node:n1",
            ["system:nodes"],
            ["n1"],
            "kubernetes.io/kubelet-serving",
            ["digital signature", "server auth"],
            None,
            id="serving",
        ),
        pytest.param(
            "system:node:n1",
            ["system:nodes"],
            [],
            "kubernetes.io/kubelet-serving",
            ["digital signature", "server auth"],
            "DNS or IP subjectAltName is required",
            id="serving without names",
        ),
        pytest.param(
            "alice",
            ["devs"],
            [],
            "kubernetes.io/kube-apiserver-client",
            ["client auth"],
            None,
            id="apiserver client",
        ),
        pytest.param(
            "alice",
            ["devs"],
            [],
            "kubernetes.io/kube-apiserver-client",
            ["server auth"],
            "invalid usage for client certificate: server auth",
            id="apiserver client server usage",
        ),
        pytest.param(
            "alice", [], [], "example.com/mine", ["client auth"], "unsupported signer", id="foreign signer"
        ),
    ],
)
def test_signer_rules(
    cn: str, orgs: list[str], dns: list[str], signer: str, usages: list[str], error: str | None
) -> None:
    request, _ = make_request(cn, orgs, dns)
    csr = csr_object("x", request, signer, usages)
    if error is None:
        validate_for_signer(csr)
    else:
        with pytest.raises(NotForSigner, match=error):
            validate_for_signer(csr)


@pytest.mark.parametrize(
    ("cn", "username", "want"),
    [
        pytest.param("system:node:n1", "system:bootstrap:abcdef", ["nodeclient"], id="bootstrap"),
        pytest.param("system:node:n1", "system:node:n1", ["selfnodeclient", "nodeclient"], id="renewal"),
    ],
)
def test_approver_recognizes_node_client_requests(cn: str, username: str, want: list[str]) -> None:
    request, _ = make_request(cn, ["system:nodes"])
    csr = csr_object("x", request, KUBELET_CLIENT, ["digital signature", "client auth"], username=username)
    assert recognized(csr) == want
    serving = csr_object("x", request, "kubernetes.io/kubelet-serving", ["digital signature", "server auth"])
    assert recognized(serving) == []


def test_sign_keeps_subject_and_caps_duration(tmp_path: Path) -> None:
    pki = tls.ensure_pki(tmp_path, hosts=[])
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    request, _ = make_request("alice", ["devs", "ops"])
    req = x509.load_pem_x509_csr(base64.b64decode(request))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    cert = x509.load_pem_x509_certificate(
        sign(req, ["digital signature", "client auth"], ca_cert, ca_key, now, 3600)
    )
    assert cert.subject == req.subject
    assert (cert.not_valid_after_utc - now).total_seconds() == 3600
    cert.verify_directly_issued_by(ca_cert)
    # Usages without key usage bits: no KeyUsage extension (as Go's x509), which TLS accepts.
    only_client = x509.load_pem_x509_certificate(sign(req, ["client auth"], ca_cert, ca_key, now, None))
    with pytest.raises(x509.ExtensionNotFound):
        only_client.extensions.get_extension_for_class(x509.KeyUsage)


async def _wait_issued(client: ApiClient, name: str) -> dict[str, Any]:
    for _ in range(200):
        csr = await client.get(GV, "certificatesigningrequests", name)
        if (csr.get("status") or {}).get("certificate"):
            return csr
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} was not issued: {csr}")


def test_node_joins_with_a_bootstrap_token(tmp_path: Path) -> None:
    asyncio.run(_join(tmp_path))


async def _join(tmp_path: Path) -> None:
    pki = tls.ensure_pki(tmp_path, hosts=[])
    server = ApiServer(WatchableStore(), pki_dir=tmp_path, authorizer=AlwaysAllow())  # type: ignore[arg-type]
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_ssl_context(pki))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"https://127.0.0.1:{port}"
    ca = str(pki.ca_cert)
    admin = ApiClient(url, ca_file=ca, cert_file=str(pki.admin_cert), key_file=str(pki.admin_key))
    node = ApiClient(url, ca_file=ca, token=TOKEN)
    try:
        data = {
            "token-id": "abcdef",
            "token-secret": "0123456789abcdef",
            "usage-bootstrap-authentication": "true",
        }
        secret = {
            "metadata": {"name": "bootstrap-token-abcdef"},
            "type": "bootstrap.kubernetes.io/token",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        await admin.create("v1", "secrets", secret, "kube-system")
        request, key_pem = make_request("system:node:n1", ["system:nodes"])
        body = csr_object(
            "node-csr-n1",
            request,
            KUBELET_CLIENT,
            ["digital signature", "client auth"],
            username="someone-else",
        )
        created = await node.create(GV, "certificatesigningrequests", body)
        assert created["spec"]["username"] == "system:bootstrap:abcdef"  # not what the body claimed
        assert created["spec"]["groups"] == ["system:bootstrappers", "system:authenticated"]
        # A kube-apiserver-client request for system:masters is refused outright.
        masters, _ = make_request("mallory", ["system:masters"])
        with pytest.raises(ApiError) as err:
            await node.create(
                GV,
                "certificatesigningrequests",
                csr_object("m", masters, "kubernetes.io/kube-apiserver-client", ["client auth"]),
            )
        assert err.value.status == 403
        assert (
            "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
            in str(err.value)
        )
        async with RunningController(
            admin, CSRSigningController, {"signing_ca": (pki.ca_cert.read_text(), pki.ca_key.read_text())}
        ):
            approved = {
                **created,
                "status": {
                    "conditions": [{"type": "Approved", "status": "True", "reason": "Test", "message": "ok"}]
                },
            }
            result = await admin.update(GV, "certificatesigningrequests", approved, subresource="approval")
            assert result["status"]["conditions"][0]["lastUpdateTime"]
            issued = await _wait_issued(admin, "node-csr-n1")
        # Approved and Denied exclude each other; an approval cannot be withdrawn.
        both = {
            **issued,
            "status": {"conditions": [*issued["status"]["conditions"], {"type": "Denied", "status": "True"}]},
        }
        with pytest.raises(ApiError, match="Approved and Denied conditions are mutually exclusive"):
            await admin.update(GV, "certificatesigningrequests", both, subresource="approval")
        cert_pem = base64.b64decode(issued["status"]["certificate"])
        as_node = ApiClient(url, ca_file=ca, cert_data=cert_pem, key_data=key_pem)
        try:
            review = await as_node.create(
                "authentication.k8s.io/v1", "selfsubjectreviews", {"kind": "SelfSubjectReview"}
            )
            assert review["status"]["userInfo"] == {
                "username": "system:node:n1",
                "groups": ["system:nodes", "system:authenticated"],
            }
        finally:
            await as_node.close()
    finally:
        await admin.close()
        await node.close()
        await runner.cleanup()
