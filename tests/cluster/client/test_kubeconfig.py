"""Kubeconfig parsing (paths, base64 -data fields, tokens, contexts) and ApiClient.from_kubeconfig
against the fake API server over TLS with client-certificate authentication."""

from __future__ import annotations

import asyncio
import base64
import datetime
import functools
import ipaddress
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cluster.client.kubeconfig import (
    KubeconfigError,
    load_client_certificate,
    load_kubeconfig,
    load_kubeconfig_text,
)
from cluster.client.rest import ApiClient, TransportError
from tests.cluster.client.fake_apiserver import FakeApiServer

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def _cert(
    cn: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, signer: Any, *, ca: bool
) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=36500))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_pem = _cert("test-ca", ca_key, None, ca_key, ca=True)
    ca_name = x509.load_pem_x509_certificate(ca_pem).subject
    files = {"ca.crt": ca_pem}
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        files[f"{who}.crt"] = _cert(who, key, ca_name, ca_key, ca=False)
        files[f"{who}.key"] = _key_pem(key)
    paths = {}
    for name, data in files.items():
        (d / name).write_bytes(data)
        paths[name] = d / name
    return paths


def _config(cluster: dict[str, Any], user: dict[str, Any], **ctx: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [
            {"name": "c", "cluster": cluster},
            {"name": "other", "cluster": {"server": "https://o:6443"}},
        ],
        "users": [{"name": "u", "user": user}, {"name": "ou", "user": {"token": "other-token"}}],
        "contexts": [
            {"name": "main", "context": {"cluster": "c", "user": "u", **ctx}},
            {"name": "alt", "context": {"cluster": "other", "user": "ou", "namespace": "team"}},
        ],
    }


def _write(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture
def scratch_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private stand-in for the system temp dir, so a test sees every file the code leaves there."""
    scratch = tmp_path / "system-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


@pytest.mark.parametrize(
    "inline", [pytest.param(False, id="file-paths"), pytest.param(True, id="base64-data")]
)
def test_certificate_fields(tmp_path: Path, pki: dict[str, Path], inline: bool, scratch_tmp: Path) -> None:
    if inline:
        cluster = {"server": "https://127.0.0.1:6443/", "certificate-authority-data": _b64(pki["ca.crt"])}
        user = {
            "client-certificate-data": _b64(pki["client.crt"]),
            "client-key-data": _b64(pki["client.key"]),
        }
    else:
        cluster = {"server": "https://127.0.0.1:6443", "certificate-authority": str(pki["ca.crt"])}
        user = {"client-certificate": str(pki["client.crt"]), "client-key": str(pki["client.key"])}
    s = load_kubeconfig(_write(tmp_path, _config(cluster, user, namespace="prod")))
    assert s.server == "https://127.0.0.1:6443" and s.namespace == "prod" and s.token is None
    loaded = {
        name: data if data is not None else Path(path or "").read_bytes()
        for name, path, data in (
            ("ca.crt", s.ca_file, s.ca_data),
            ("client.crt", s.cert_file, s.cert_data),
            ("client.key", s.key_file, s.key_data),
        )
    }
    assert loaded == {name: pki[name].read_bytes() for name in loaded}
    # Inline data stays in memory (no file to leak, a private key least of all); paths stay paths.
    assert (s.ca_file, s.cert_file, s.key_file) == (
        (None, None, None) if inline else (str(pki["ca.crt"]), str(pki["client.crt"]), str(pki["client.key"]))
    )
    assert list(scratch_tmp.iterdir()) == []


def test_relative_paths_token_file_and_named_context(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("x")
    (tmp_path / "token").write_text("tok-from-file\n")
    config = _config({"server": "https://a:6443", "certificate-authority": "ca.crt"}, {"tokenFile": "token"})
    path = _write(tmp_path, config)
    s = load_kubeconfig(path)
    assert s.ca_file == str(tmp_path / "ca.crt") and s.token == "tok-from-file"
    alt = load_kubeconfig(path, context="alt")
    assert (alt.server, alt.token, alt.namespace, alt.ca_file) == (
        "https://o:6443",
        "other-token",
        "team",
        None,
    )


def test_kubeconfig_text_reads_as_the_file_would_from_its_directory(tmp_path: Path) -> None:
    """An actor on another host gets the text; relative paths still resolve against base_dir."""
    (tmp_path / "token").write_text("tok-from-file\n")
    config = _config({"server": "https://a:6443/"}, {"tokenFile": "token"}, namespace="prod")
    text = yaml.safe_dump(config)
    s = load_kubeconfig_text(text, str(tmp_path))
    assert s == load_kubeconfig(_write(tmp_path, config))
    assert (s.server, s.token, s.namespace) == ("https://a:6443", "tok-from-file", "prod")
    assert load_kubeconfig_text(text, str(tmp_path), "alt").namespace == "team"


@pytest.mark.parametrize(
    ("mutate", "context"),
    [
        pytest.param(lambda c: c.pop("current-context"), None, id="no-current-context"),
        pytest.param(lambda c: None, "nope", id="unknown-context"),
        pytest.param(
            lambda c: c["contexts"][0]["context"].update(cluster="gone"), None, id="unknown-cluster"
        ),
        pytest.param(lambda c: c["clusters"][0]["cluster"].pop("server"), None, id="no-server"),
    ],
)
def test_bad_kubeconfigs(tmp_path: Path, mutate: Any, context: str | None) -> None:
    config = _config({"server": "https://a:6443"}, {"token": "t"})
    mutate(config)
    with pytest.raises(KubeconfigError):
        load_kubeconfig(_write(tmp_path, config), context)


def _server_context(pki: dict[str, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca.crt"]))
    ctx.load_cert_chain(str(pki["server.crt"]), str(pki["server.key"]))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def test_from_kubeconfig_talks_tls_with_client_certificate(
    tmp_path: Path, pki: dict[str, Path], scratch_tmp: Path
) -> None:
    async def main() -> None:
        fake = FakeApiServer()
        url = await fake.start(ssl_context=_server_context(pki))
        assert url.startswith("https://127.0.0.1:")
        user = {
            "client-certificate-data": _b64(pki["client.crt"]),
            "client-key-data": _b64(pki["client.key"]),
        }
        config = _config({"server": url, "certificate-authority-data": _b64(pki["ca.crt"])}, user)
        client = ApiClient.from_kubeconfig(_write(tmp_path, config))
        assert list(scratch_tmp.iterdir()) == []  # the key pair passed through disk and is gone
        no_cert = ApiClient(url, ca_file=str(pki["ca.crt"]), request_timeout=3)
        untrusted = ApiClient(url, cert_file=str(pki["client.crt"]), key_file=str(pki["client.key"]))
        try:
            fake.put("pods", {"metadata": {"name": "a", "namespace": "default"}})
            listed = await client.list("v1", "pods", "default")
            assert [p["metadata"]["name"] for p in listed["items"]] == ["a"]
            assert client.default_namespace == "default"
            with pytest.raises(TransportError):
                await no_cert.list("v1", "pods")  # the server demands a client certificate
            with pytest.raises(TransportError):
                await untrusted.list("v1", "pods")  # the server's CA is not in the default trust store
        finally:
            for c in (client, no_cert, untrusted):
                await c.close()
            await fake.stop()

    asyncio.run(main())


def test_from_kubeconfig_with_token(tmp_path: Path) -> None:
    async def main() -> None:
        fake = FakeApiServer()
        url = await fake.start()
        client = ApiClient.from_kubeconfig(
            _write(tmp_path, _config({"server": url}, {"token": "abc"}, namespace="x"))
        )
        try:
            await client.list("v1", "pods")
            assert fake.requests[-1].headers["Authorization"] == "Bearer abc"
            assert client.default_namespace == "x"
        finally:
            await client.close()
            await fake.stop()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("cert_inline", "key_inline", "key_name"),
    [
        pytest.param(True, True, "client.key", id="both-inline"),
        pytest.param(True, False, "client.key", id="cert-inline-key-file"),
        pytest.param(False, True, "client.key", id="cert-file-key-inline"),
        pytest.param(True, True, "server.key", id="mismatched-key-fails-and-cleans-up"),
    ],
)
def test_load_client_certificate_leaves_nothing_on_disk(
    pki: dict[str, Path], scratch_tmp: Path, cert_inline: bool, key_inline: bool, key_name: str
) -> None:
    context = ssl.create_default_context()
    cert, key = pki["client.crt"], pki[key_name]
    load = functools.partial(
        load_client_certificate,
        context,
        cert_file=None if cert_inline else str(cert),
        key_file=None if key_inline else str(key),
        cert_data=cert.read_bytes() if cert_inline else None,
        key_data=key.read_bytes() if key_inline else None,
    )
    if key_name == "client.key":
        load()
    else:
        with pytest.raises(ssl.SSLError):
            load()
    assert list(scratch_tmp.iterdir()) == []
