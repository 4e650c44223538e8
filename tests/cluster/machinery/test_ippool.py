"""IpPool: parsing pool specs, lowest-free assignment, requested addresses, claims and release."""

from __future__ import annotations

import pytest

from cluster.machinery.ippool import AddressUnavailable, IpPool, PoolError, PoolExhausted, parse_pool


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("172.29.0.0/24", ["172.29.0.1-172.29.0.254"], id="cidr-skips-network-broadcast"),
        pytest.param("10.0.0.4/31", ["10.0.0.4-10.0.0.5"], id="slash31-whole"),
        pytest.param("10.0.0.9/32", ["10.0.0.9-10.0.0.9"], id="slash32"),
        pytest.param("10.0.0.9", ["10.0.0.9-10.0.0.9"], id="single-address"),
        pytest.param(" 10.1.0.5-10.1.0.7 ,10.0.0.0/30", ["10.0.0.1-10.0.0.2", "10.1.0.5-10.1.0.7"],
                     id="list-sorted"),
        pytest.param("fd00::/126", ["fd00::-fd00::3"], id="ipv6-whole"),
    ],
)  # fmt: skip
def test_parse_pool(spec: str, expected: list[str]) -> None:
    assert [str(r) for r in parse_pool(spec)] == expected


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("", id="empty"),
        pytest.param("10.0.0.1/24", id="host-bits"),
        pytest.param("10.0.0.9-10.0.0.1", id="downward-range"),
        pytest.param("10.0.0.1-fd00::1", id="mixed-family"),
        pytest.param("nonsense", id="garbage"),
        pytest.param("10.0.0.0/24,10.0.0.100-10.0.0.110", id="overlap"),
    ],
)
def test_parse_pool_refuses(spec: str) -> None:
    with pytest.raises(PoolError):
        parse_pool(spec)


def test_assign_lowest_free_idempotent_and_reuses_released() -> None:
    pool = IpPool("10.0.0.0/29")  # .1 - .6
    assert pool.assign("a") == "10.0.0.1"
    assert pool.assign("a") == "10.0.0.1"
    assert pool.assign("b") == "10.0.0.2"
    assert pool.assign("c") == "10.0.0.3"
    assert pool.release("b") == "10.0.0.2"
    assert pool.assign("d") == "10.0.0.2"  # the lowest free one, not the next after the last
    assert pool.release("nobody") is None


def test_assign_spans_ranges_and_exhausts_without_change() -> None:
    pool = IpPool("10.0.0.1-10.0.0.2,10.9.0.7")
    assert [pool.assign(o) for o in "abc"] == ["10.0.0.1", "10.0.0.2", "10.9.0.7"]
    with pytest.raises(PoolExhausted):
        pool.assign("d")
    assert "d" not in pool.held and len(pool.held) == 3


def test_requested_address() -> None:
    pool = IpPool("10.0.0.0/29")
    assert pool.assign("a", "10.0.0.5") == "10.0.0.5"
    assert pool.assign("b") == "10.0.0.1"
    with pytest.raises(AddressUnavailable, match="already in use by a"):
        pool.assign("c", "10.0.0.5")
    with pytest.raises(AddressUnavailable, match="not in the pool"):
        pool.assign("c", "10.0.0.7")  # the broadcast address is left out
    assert pool.assign("b", "10.0.0.6") == "10.0.0.6"  # a new request moves b, freeing .1
    assert pool.holder("10.0.0.1") is None
    assert pool.assign("c") == "10.0.0.1"


def test_claim_rebuilds_and_refuses_duplicates() -> None:
    pool = IpPool("fd00::/120")
    pool.claim("old", "fd00:0::3")  # stored canonically
    assert pool.holder("fd00::3") == "old"
    with pytest.raises(AddressUnavailable):
        pool.claim("young", "fd00::3")
    with pytest.raises(AddressUnavailable):
        pool.claim("young", "not-an-ip")
    assert pool.assign("young") == "fd00::"
    assert "fd00::ff" in pool and "fd00::1:0" not in pool and "x" not in pool
    assert pool.size == 256
