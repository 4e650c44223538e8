"""The node agent's HTTPS endpoint serves the API server's kubelet client certificate only: another
certificate from the cluster CA (a user's, another node's, the admin's) gets the kubelet's 403, a
client without a certificate never completes the handshake (CIS 4.2.1/4.2.2). A real TLS server,
no Ray."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest

from cluster.apiserver import tls
from cluster.apiserver.proxy import KUBELET_CLIENT_CN, ensure_kubelet_client_cert
from nodeagent.server.agent import API_SERVER_CLIENT, AgentServer, forbidden_message
from nodeagent.server.tls import agent_ssl_context, ensure_agent_cert
from tests.nodeagent.server.harness import FakeLookup


def client_context(pki: tls.Pki, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def user_pair(pki: tls.Pki, tmp: Path, user: str, groups: list[str]) -> tuple[Path, Path]:
    cert_pem, key_pem = tls.issue_client_cert(pki, user, groups)
    (tmp / f"{user}.crt").write_bytes(cert_pem)
    (tmp / f"{user}.key").write_bytes(key_pem)
    return tmp / f"{user}.crt", tmp / f"{user}.key"


def test_same_name_as_the_api_server_uses() -> None:
    assert API_SERVER_CLIENT == KUBELET_CLIENT_CN


@pytest.mark.parametrize(
    ("method", "path", "text"),
    [
        pytest.param(
            "GET",
            "/containerLogs/default/web/app",
            "Forbidden (user=alice, verb=get, resource=nodes, subresource=proxy)",
            id="logs",
        ),
        pytest.param(
            "POST",
            "/exec/default/web/app",
            "Forbidden (user=alice, verb=create, resource=nodes, subresource=proxy)",
            id="exec",
        ),
        pytest.param(
            "GET", "/stats/summary", "Forbidden (user=alice, verb=get, resource=nodes, subresource=stats)"
        ),
        pytest.param("GET", "/logs/", "Forbidden (user=alice, verb=get, resource=nodes, subresource=log)"),
    ],
)
def test_forbidden_message_is_the_kubelets(method: str, path: str, text: str) -> None:
    assert forbidden_message("alice", method, path) == text


def test_only_the_api_server_certificate_is_served(tmp_path: Path) -> None:
    pki = tls.ensure_pki(tmp_path / "pki", hosts=[])
    cert, key = ensure_agent_cert(pki, tmp_path / "agent", "n1", ["127.0.0.1"])
    kubelet_client = ensure_kubelet_client_cert(tmp_path / "pki")
    callers = {
        "api server": kubelet_client,
        "user": user_pair(pki, tmp_path, "alice", ["devs"]),
        "other node": user_pair(pki, tmp_path, "system:node:n2", ["system:nodes"]),
        "admin": (pki.admin_cert, pki.admin_key),
    }

    async def main() -> None:
        server = AgentServer(
            FakeLookup(),
            None,  # type: ignore[arg-type]  # no route here reaches the runtime
            host="127.0.0.1",
            ssl_context=agent_ssl_context(pki.ca_cert, cert, key),
        )
        port = await server.start()
        base = f"https://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                answers = {}
                for who, (c, k) in callers.items():
                    ssl_context = client_context(pki, c, k)
                    async with session.get(f"{base}/containerLogs/default/web/app", ssl=ssl_context) as r:
                        answers[who] = (r.status, await r.text())
                    async with session.get(f"{base}/healthz", ssl=ssl_context) as r:
                        answers[f"{who} healthz"] = (r.status, await r.text())
                with pytest.raises(aiohttp.ClientError):  # no certificate: refused in the handshake
                    async with session.get(f"{base}/healthz", ssl=client_context(pki, None, None)) as r:
                        await r.read()
        finally:
            await server.stop()
        assert answers["api server healthz"] == (200, "ok")
        assert answers["api server"][0] == 404  # through: the lookup knows no such pod
        refusal = "Forbidden (user={}, verb=get, resource=nodes, subresource=proxy)"
        assert answers["user"] == (403, refusal.format("alice"))
        assert answers["user healthz"] == (403, refusal.format("alice"))
        assert answers["other node"] == (403, refusal.format("system:node:n2"))
        assert answers["admin"][0] == 403

    asyncio.run(main())
