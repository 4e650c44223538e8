"""``make_backend``: nftables falls back to iptables without the ``nft`` binary; iptables on request."""

from __future__ import annotations

import shutil

import pytest

from netplugins.proxy import actor
from netplugins.proxy.ipt_backend import IptablesBackend
from netplugins.proxy.nft_backend import NftablesBackend

OPTIONS = {"table": "rkproxy-fb", "cluster_cidr": "10.244.0.0/16,fd00::/48,10.245.0.0/16"}


def test_nftables_without_nft_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "nft" else f"/usr/sbin/{name}")
    backend = actor.make_backend("nftables", OPTIONS)
    assert isinstance(backend, IptablesBackend)
    assert backend.options.cluster_cidr == "10.244.0.0/16"
    assert "falling back to the iptables backend" in caplog.text


def test_nftables_with_nft_and_iptables_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/sbin/{name}")
    assert isinstance(actor.make_backend("nftables", OPTIONS), NftablesBackend)
    assert isinstance(actor.make_backend("iptables", OPTIONS), IptablesBackend)
    assert "iptables" in actor.MODES
