"""The PKI primitives: a CA, leaves it issues, loading pairs back, the renewal rule, SAN handling."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cluster.machinery import pki

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CaPaths:
    ca_cert: Path
    ca_key: Path


@pytest.fixture(scope="module")
def ca() -> tuple[x509.Certificate, pki.PrivateKey]:
    return pki.new_ca(NOW)


def test_ca_is_self_signed_and_a_ca(ca: tuple[x509.Certificate, pki.PrivateKey]) -> None:
    cert, _ = ca
    assert pki.signed_by(cert, cert)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc == NOW + pki.CA_VALIDITY


def test_leaf_is_signed_named_and_capped_by_the_ca(ca: tuple[x509.Certificate, pki.PrivateKey]) -> None:
    cert, _ = pki.issue_leaf(
        *ca,
        subject=pki.subject_name("alice", ["devs", "ops"]),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        now=NOW,
        validity=timedelta(days=100_000),
        sans=pki.san_entries(["10.0.0.1", "node-a", "10.0.0.1", ""]),
    )
    assert pki.signed_by(cert, ca[0])
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["alice"]
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "devs",
        "ops",
    ]
    assert cert.not_valid_after_utc == ca[0].not_valid_after_utc
    assert pki.certificate_hosts(cert) == {"10.0.0.1", "node-a"}


def test_a_leaf_from_another_ca_is_not_signed_by_ours(ca: tuple[x509.Certificate, pki.PrivateKey]) -> None:
    other = pki.new_ca(NOW)
    cert, _ = pki.issue_leaf(
        *other,
        subject=pki.subject_name("x"),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        now=NOW,
        validity=pki.LEAF_VALIDITY,
    )
    assert not pki.signed_by(cert, ca[0])


@pytest.mark.parametrize(
    ("at", "fresh"),
    [
        pytest.param(NOW, True, id="new"),
        pytest.param(NOW - 2 * pki.CLOCK_SKEW, True, id="within-skew-before"),
        pytest.param(NOW - 2 * pki.CLOCK_SKEW - timedelta(seconds=1), False, id="not-yet-valid"),
        pytest.param(NOW + pki.LEAF_VALIDITY - pki.RENEW_BEFORE, False, id="due-for-renewal"),
    ],
)
def test_fresh(ca: tuple[x509.Certificate, pki.PrivateKey], at: datetime, fresh: bool) -> None:
    cert, _ = pki.issue_leaf(
        *ca,
        subject=pki.subject_name("x"),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        now=NOW,
        validity=pki.LEAF_VALIDITY,
    )
    assert pki.fresh(cert, at) is fresh


def test_store_and_load_pair(ca: tuple[x509.Certificate, pki.PrivateKey], tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "ca.crt", tmp_path / "ca.key"
    pki.store_pair(cert_path, key_path, *ca)
    assert {stat.S_IMODE(p.stat().st_mode) for p in (cert_path, key_path)} == {0o600}
    loaded = pki.load_ca(CaPaths(cert_path, key_path))
    assert loaded[0] == ca[0]
    key_path.write_bytes(pki.key_pem(pki.new_key()))  # a key that does not match the certificate
    assert pki.load_pair(cert_path, key_path) is None
    with pytest.raises(FileNotFoundError):
        pki.load_ca(CaPaths(cert_path, key_path))


@pytest.mark.parametrize(
    ("host", "normalized"),
    [
        pytest.param("fd00:0:0::10", "fd00::10", id="ipv6"),
        pytest.param("10.0.0.1", "10.0.0.1", id="ipv4"),
        pytest.param("api.example.com", "api.example.com", id="dns"),
    ],
)
def test_normalize_host(host: str, normalized: str) -> None:
    assert pki.normalize_host(host) == normalized
