"""Node ``spec.podCIDR(s)``: valid CIDRs, one per family, set once (by the node IPAM controller) and
never changed, with kube's messages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.apiserver.validation.conftest import create_details, update_details

CHANGE = 'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid'
CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def node(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": spec}


ONE_PER_FAMILY = "may specify no more than one CIDR for each IP family"
TWO_V4 = ["10.244.1.0/24", "10.244.2.0/24"]
TWICE = ["fd00::/64", "fd00::/64"]
DISAGREE = {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.1.0/24"]}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, [], id="none"),
        pytest.param({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}, [], id="ipv4"),
        pytest.param({"podCIDR": "10.244.1.0/24"}, [], id="single-field-only"),
        pytest.param({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]}, [],
                     id="dual-stack"),
        pytest.param({"podCIDRs": ["10.244.1.0/33"]},
                     [f'spec.podCIDRs[0]: Invalid value: "10.244.1.0/33": {CIDR}'], id="bad-prefix"),
        pytest.param({"podCIDR": "banana"}, [f'spec.podCIDR: Invalid value: "banana": {CIDR}'],
                     id="bad-single"),
        pytest.param({"podCIDRs": TWO_V4},
                     ['spec.podCIDRs: Invalid value: []string{"10.244.1.0/24", "10.244.2.0/24"}: '
                      + ONE_PER_FAMILY],
                     id="two-ipv4"),
        pytest.param({"podCIDRs": TWICE},
                     [f'spec.podCIDRs: Invalid value: []string{{"fd00::/64", "fd00::/64"}}: {ONE_PER_FAMILY}',
                      'spec.podCIDRs[1]: Duplicate value: "fd00::/64"'], id="duplicate"),
        pytest.param(DISAGREE,
                     ['spec.podCIDR: Invalid value: "10.244.2.0/24": '
                      "must match the first entry of spec.podCIDRs"],
                     id="single-disagrees"),
    ],
)  # fmt: skip
def test_create(spec: dict[str, Any], expected: list[str]) -> None:
    assert create_details(node(**spec), namespaced=False) == expected


A = {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}
B = {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"]}
DUAL = {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param({}, A, [], id="from-empty-to-valid"),
        pytest.param(A, A, [], id="unchanged"),
        pytest.param(A, {**A, "unschedulable": True}, [], id="other-fields-change"),
        pytest.param(A, B, [CHANGE], id="changed"),
        pytest.param(A, {}, [CHANGE], id="cleared"),
        pytest.param(A, {"podCIDRs": ["10.244.2.0/24"]}, [CHANGE], id="list-changed"),
        pytest.param(A, DUAL, [CHANGE], id="family-added-later"),
        pytest.param({"podCIDR": "10.244.1.0/24"}, A, [], id="list-filled-in-from-single"),
    ],
)
def test_update(old: dict[str, Any], new: dict[str, Any], expected: list[str]) -> None:
    assert update_details(node(**new), node(**old), namespaced=False) == expected
