"""Which store client our components get (``cluster.store.clients``), without Ray: the choice from
``$RAYKUBE_STORE_CLIENT`` and the gRPC client built from given endpoints and a PKI directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cluster.apiserver.tls import ensure_pki
from cluster.store.clients import DEFAULT_KIND, STORE_CLIENT_ENV, client_kind, connect_store
from cluster.store.etcd_api.server import ServerTLS, bound_port, build_server
from cluster.store.etcd_client import EtcdStoreClient
from cluster.store.tls import StorePki, ensure_store_pki
from tests.cluster.store.etcd_api.cluster import start_cluster


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        pytest.param(None, DEFAULT_KIND, id="unset"),
        pytest.param("", DEFAULT_KIND, id="empty"),
        pytest.param("grpc", "grpc", id="grpc"),
        pytest.param(" Ray ", "ray", id="ray-any-case"),
    ],
)
def test_the_client_kind_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, kind: str
) -> None:
    if value is None:
        monkeypatch.delenv(STORE_CLIENT_ENV, raising=False)
    else:
        monkeypatch.setenv(STORE_CLIENT_ENV, value)
    assert client_kind() == kind


def test_an_unknown_client_kind_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_CLIENT_ENV, "http")
    with pytest.raises(ValueError, match="RAYKUBE_STORE_CLIENT must be one of grpc, ray"):
        client_kind()


def test_grpc_client_over_tls_with_the_components_certificate_from_the_pki_dir(tmp_path: Path) -> None:
    pki_dir = tmp_path / "pki"
    ensure_pki(pki_dir, hosts=[])
    ensure_store_pki(pki_dir, ["127.0.0.1"])
    pki = StorePki.in_dir(pki_dir)
    tls = ServerTLS(pki.ca_cert.read_bytes(), pki.server_cert.read_bytes(), pki.server_key.read_bytes())

    async def main() -> None:
        cluster = await start_cluster(tmp_path, 1)
        server = build_server(cluster.backends[1], host="127.0.0.1", port=0, tls=tls)
        await server.start()
        url = f"https://127.0.0.1:{bound_port(server)}"
        try:
            with pytest.raises(ValueError, match="serves TLS"):
                await connect_store("ns", endpoints=[url], kind="grpc")
            client = await connect_store("ns", endpoints=[url], kind="grpc", pki_dir=pki_dir)
            assert isinstance(client, EtcdStoreClient)
            assert (await client.put(b"/k", b"v")).revision == 2
            await client.close()
            client = await connect_store("ns", endpoints=[url], kind="grpc", data_dir=tmp_path)
            assert (await client.get(b"/k")).value == b"v"  # type: ignore[union-attr]
            await client.close()
        finally:
            await server.stop(None)
            await cluster.close()

    asyncio.run(main())
