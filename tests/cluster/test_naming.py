"""Kubernetes node names for Ray nodes: the host name, made unique only when hosts repeat."""

from __future__ import annotations

import socket

import pytest

from cluster.naming import DEFAULT_NAMESPACE, default_namespace, node_names


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        pytest.param(
            [{"NodeID": "abcdef0123", "NodeManagerHostname": "VM-1"}],
            {"abcdef0123": "vm-1"},
            id="lower-case-host",
        ),
        pytest.param(
            [
                {"NodeID": "aaaaaaaa11", "NodeManagerHostname": "vm"},
                {"NodeID": "bbbbbbbb22", "NodeManagerHostname": "vm"},
                {"NodeID": "cccccccc33", "NodeManagerHostname": "other"},
            ],
            {"aaaaaaaa11": "vm-aaaaaaaa", "bbbbbbbb22": "vm-bbbbbbbb", "cccccccc33": "other"},
            id="shared-host-gets-node-id-prefix",
        ),
        pytest.param(
            [
                {
                    "NodeID": "aaaaaaaa11",
                    "NodeManagerHostname": "vm",
                    "Resources": {"node:__internal_head__": 1},
                },
                {"NodeID": "bbbbbbbb22", "NodeManagerHostname": "vm"},
            ],
            {"aaaaaaaa11": "vm", "bbbbbbbb22": "vm-bbbbbbbb"},
            id="the-head-keeps-the-host-name",
        ),
        pytest.param(
            [
                {
                    "NodeID": "f" * 51 + "00000",
                    "NodeManagerHostname": "vm",
                    "Resources": {"node:__internal_head__": 1},
                },
                {"NodeID": "f" * 51 + "00001", "NodeManagerHostname": "vm"},
                {"NodeID": "f" * 51 + "00002", "NodeManagerHostname": "vm"},
            ],
            {"f" * 51 + "00000": "vm", "f" * 51 + "00001": "vm-fff00001", "f" * 51 + "00002": "vm-fff00002"},
            id="fake-provider-ids-differ-at-the-end",
        ),
        pytest.param([{"NodeID": "x1"}], {"x1": socket.gethostname().lower()}, id="no-host-is-this-host"),
    ],
)
def test_node_names(nodes: list[dict[str, str]], expected: dict[str, str]) -> None:
    assert node_names(nodes) == expected


def test_default_namespace_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAYKUBE_NAMESPACE", raising=False)
    assert default_namespace() == DEFAULT_NAMESPACE
    monkeypatch.setenv("RAYKUBE_NAMESPACE", "elsewhere")
    assert default_namespace() == "elsewhere"
