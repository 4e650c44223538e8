"""The one quantity parser: Kubernetes' grammar, exact values, and what it refuses (whitespace too)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cluster.machinery.quantity import QuantityError, is_quantity, parse_quantity


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("100m", Decimal("0.1"), id="milli"),
        pytest.param("1Gi", Decimal(2**30), id="gibi"),
        pytest.param("0.5", Decimal("0.5"), id="decimal"),
        pytest.param(".5", Decimal("0.5"), id="leading-dot"),
        pytest.param("1e3", Decimal(1000), id="exponent"),
        pytest.param("1E-3", Decimal("0.001"), id="negative-exponent"),
        pytest.param("2E", Decimal(2 * 10**18), id="exa"),
        pytest.param("-1k", Decimal(-1000), id="negative"),
        pytest.param("10n", Decimal("1E-8"), id="nano"),
        pytest.param(3, Decimal(3), id="int"),
        pytest.param(0.25, Decimal("0.25"), id="float"),
    ],
)
def test_parse_quantity(value: object, expected: Decimal) -> None:
    assert parse_quantity(value) == expected
    assert is_quantity(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("", "regular expression", id="empty"),
        pytest.param("abc", "regular expression", id="letters"),
        pytest.param(" 1Gi", "regular expression", id="leading-space"),
        pytest.param("1Gi ", "suffix", id="trailing-space"),
        pytest.param("1Gi\n", "regular expression", id="trailing-newline"),
        pytest.param("1 Gi", "suffix", id="inner-space"),
        pytest.param("1Gb", "suffix", id="unknown-suffix"),
        pytest.param("--1", "regular expression", id="double-sign"),
        pytest.param(True, "strings or numbers", id="bool"),
        pytest.param(None, "strings or numbers", id="null"),
    ],
)
def test_parse_quantity_rejects(value: object, message: str) -> None:
    with pytest.raises(QuantityError, match=message):
        parse_quantity(value)
    assert not is_quantity(value)
