"""Port choice of the store replicas and the records that keep it (pure but for real sockets)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cluster.store.network import (
    Endpoint,
    choose_ports,
    port_free,
    record_endpoints,
    record_ports,
    recorded_endpoints,
    recorded_ports,
)


def free_except(*taken: int):  # type: ignore[no-untyped-def]
    return lambda port: port not in taken


@pytest.mark.parametrize(
    ("ids", "recorded", "base", "taken", "want"),
    [
        pytest.param([1], {}, 2379, (), {1: (2379, 2380)}, id="etcd-defaults"),
        pytest.param(
            [1, 2, 3], {}, 2379, (), {1: (2379, 2380), 2: (2381, 2382), 3: (2383, 2384)}, id="pairs"
        ),
        pytest.param([1], {}, 2379, (2380,), {1: (2381, 2382)}, id="peer-port-taken"),
        pytest.param([1, 2], {}, 0, (), {1: (0, 0), 2: (0, 0)}, id="free-ports"),
        pytest.param([1], {}, 12000, (), {1: (12000, 12001)}, id="store-port"),
        pytest.param(
            [1, 2],
            {1: (2381, 2382)},
            2379,
            (2381, 2382),
            {1: (2381, 2382), 2: (2379, 2380)},
            id="recorded-kept",
        ),
        pytest.param(
            [1, 2], {1: (2379, 2380)}, 0, (), {1: (2379, 2380), 2: (0, 0)}, id="recorded-wins-over-free"
        ),
        pytest.param(
            [4], {1: (2379, 2380)}, 2379, (), {4: (2381, 2382)}, id="another-replicas-record-is-taken"
        ),
    ],
)
def test_choose_ports(
    ids: list[int],
    recorded: dict[int, tuple[int, int]],
    base: int,
    taken: tuple[int, ...],
    want: dict[int, tuple[int, int]],
) -> None:
    assert choose_ports(ids, recorded, base, free_except(*taken)) == want


def test_no_pair_left_is_an_error() -> None:
    with pytest.raises(ValueError, match="no free pair"):
        choose_ports([1], {}, 65534, lambda port: False)


def test_port_free_sees_a_listener() -> None:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_free(port)
    assert port_free(port)


def test_records_round_trip(tmp_path: Path) -> None:
    assert recorded_ports(tmp_path / "replica-1") is None
    record_ports(tmp_path / "replica-1", 2379, 2380)
    assert recorded_ports(tmp_path / "replica-1") == (2379, 2380)
    endpoints = [Endpoint(2, "10.0.0.2", 2381, 2382), Endpoint(1, "::1", 2379, 2380)]
    record_endpoints(tmp_path, endpoints)
    got = recorded_endpoints(tmp_path)
    assert got == {1: endpoints[1], 2: endpoints[0]}
    assert got[1].client_url == "https://[::1]:2379"
    assert got[2].peer_url == "https://10.0.0.2:2382"
