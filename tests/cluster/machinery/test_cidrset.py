"""CidrSet: the per-node subnets of a cluster CIDR, handed out, occupied and released."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.machinery.cidrset import (
    CidrError,
    CidrOutOfRange,
    CidrSet,
    CidrSetFull,
    parse_cluster_cidrs,
)


def allocate(cidr_set: CidrSet, n: int) -> list[str]:
    return [str(cidr_set.allocate_next()) for _ in range(n)]


@pytest.mark.parametrize(
    ("cluster", "mask", "expected"),
    [
        pytest.param("10.244.0.0/16", 24, ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"], id="ipv4-24"),
        pytest.param("10.0.0.0/8", 12, ["10.0.0.0/12", "10.16.0.0/12", "10.32.0.0/12"], id="ipv4-12"),
        pytest.param("10.1.2.0/24", 24, ["10.1.2.0/24"], id="one-subnet"),
        pytest.param(
            "fd00:10:244::/56",
            64,
            ["fd00:10:244::/64", "fd00:10:244:1::/64", "fd00:10:244:2::/64"],
            id="ipv6-64",
        ),
    ],
)
def test_allocates_in_order(cluster: str, mask: int, expected: list[str]) -> None:
    assert allocate(CidrSet(cluster, mask), len(expected)) == expected


def test_full_set_raises_and_release_makes_room() -> None:
    cidr_set = CidrSet("10.0.0.0/23", 24)
    assert allocate(cidr_set, 2) == ["10.0.0.0/24", "10.0.1.0/24"]
    with pytest.raises(CidrSetFull):
        cidr_set.allocate_next()
    cidr_set.release("10.0.0.0/24")
    assert allocate(cidr_set, 1) == ["10.0.0.0/24"]
    assert cidr_set.used == 2


def test_next_candidate_rotates_so_a_released_subnet_is_reused_last() -> None:
    cidr_set = CidrSet("10.0.0.0/22", 24)
    assert allocate(cidr_set, 2) == ["10.0.0.0/24", "10.0.1.0/24"]
    cidr_set.release("10.0.0.0/24")
    assert allocate(cidr_set, 3) == ["10.0.2.0/24", "10.0.3.0/24", "10.0.0.0/24"]


@pytest.mark.parametrize(
    ("occupied", "expected_next", "used"),
    [
        pytest.param(["10.0.0.0/24"], "10.0.1.0/24", 1, id="first-taken"),
        pytest.param(["10.0.0.0/23"], "10.0.2.0/24", 2, id="bigger-cidr-marks-two"),
        pytest.param(["10.0.0.128/25"], "10.0.1.0/24", 1, id="smaller-cidr-marks-its-subnet"),
        pytest.param(["10.0.0.0/24", "10.0.0.0/24"], "10.0.1.0/24", 1, id="idempotent"),
        pytest.param(["10.0.0.0/24", "10.0.2.0/24"], "10.0.1.0/24", 2, id="gap-filled"),
    ],
)
def test_occupy(occupied: list[str], expected_next: str, used: int) -> None:
    cidr_set = CidrSet("10.0.0.0/22", 24)
    for cidr in occupied:
        cidr_set.occupy(cidr)
    assert cidr_set.used == used
    assert str(cidr_set.allocate_next()) == expected_next


def test_occupy_a_supernet_marks_everything() -> None:
    cidr_set = CidrSet("10.0.0.0/22", 24)
    cidr_set.occupy("10.0.0.0/8")
    assert cidr_set.used == 4
    with pytest.raises(CidrSetFull):
        cidr_set.allocate_next()


@pytest.mark.parametrize(
    "cidr",
    [
        pytest.param("10.1.0.0/24", id="outside"),
        pytest.param("10.0.4.0/24", id="just-after"),
        pytest.param("fd00::/64", id="other-family"),
    ],
)
def test_out_of_range_changes_nothing(cidr: str) -> None:
    cidr_set = CidrSet("10.0.0.0/22", 24)
    for call in (cidr_set.occupy, cidr_set.release, cidr_set.is_used):
        with pytest.raises(CidrOutOfRange):
            call(cidr)
    assert cidr_set.used == 0


@pytest.mark.parametrize(
    ("cluster", "mask", "message"),
    [
        pytest.param("10.0.0.0/16", 8, "must be between", id="mask-below-cluster-prefix"),
        pytest.param("10.0.0.0/16", 33, "must be between", id="mask-too-long"),
        pytest.param("10.0.0.0/8", 25, "more than 2\\^16", id="too-many-subnets"),
        pytest.param("10.0.0.1/16", 24, "host bits", id="host-bits"),
    ],
)
def test_bad_sets(cluster: str, mask: int, message: str) -> None:
    with pytest.raises(CidrError, match=message):
        CidrSet(cluster, mask)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("10.244.0.0/16", ["10.244.0.0/16"], id="one"),
        pytest.param("10.244.0.0/16,fd00:10:244::/56", ["10.244.0.0/16", "fd00:10:244::/56"], id="dual"),
        pytest.param("fd00::/48, 10.0.0.0/8", ["fd00::/48", "10.0.0.0/8"], id="ipv6-first-spaces"),
    ],
)
def test_parse_cluster_cidrs(value: str, expected: list[str]) -> None:
    assert [str(c) for c in parse_cluster_cidrs(value)] == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("10.0.0.0/8,10.1.0.0/16", id="two-ipv4"),
        pytest.param("10.0.0.0/8,fd00::/48,10.1.0.0/16", id="three"),
        pytest.param("banana", id="not-a-cidr"),
    ],
)
def test_parse_cluster_cidrs_refuses(value: str) -> None:
    with pytest.raises(CidrError):
        parse_cluster_cidrs(value)


# Each op: ("alloc", _) or ("release", i) releasing the i-th live allocation (mod how many are live).
ops = st.lists(st.tuples(st.sampled_from(["alloc", "release"]), st.integers(0, 100)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(ops=ops, mask=st.integers(26, 29))
def test_against_a_model(ops: list[tuple[str, int]], mask: int) -> None:
    """Whatever the order of allocations and releases: no subnet is handed out twice while live,
    each is an aligned /mask inside the cluster CIDR, and the set is full exactly when the model is."""
    cluster = ipaddress.ip_network("10.9.0.0/24")
    cidr_set = CidrSet(cluster, mask)
    live: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for op, n in ops:
        if op == "alloc":
            if len(live) == cidr_set.max_cidrs:
                with pytest.raises(CidrSetFull):
                    cidr_set.allocate_next()
                continue
            got = cidr_set.allocate_next()
            assert got.prefixlen == mask and got.subnet_of(cluster)  # type: ignore[arg-type]
            assert got not in live
            live.append(got)
        elif live:
            cidr_set.release(live.pop(n % len(live)))
        assert cidr_set.used == len(live)
