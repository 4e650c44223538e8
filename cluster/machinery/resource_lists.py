"""Quantity arithmetic for LimitRanger, ResourceQuota and the quota controller: exact sums of
resource lists and the canonical text Kubernetes prints in their messages (``Quantity.String()``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from cluster.machinery.quantity import QuantityError, parse_quantity

_BINARY = (("Ei", 6), ("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1))
_DECIMAL = (("E", 18), ("P", 15), ("T", 12), ("G", 9), ("M", 6), ("k", 3))


def value(text: object) -> Decimal:
    """The quantity's value; a malformed one counts as zero (validation reports it)."""
    try:
        return parse_quantity(text)
    except QuantityError:
        return Decimal(0)


def is_binary(text: object) -> bool:
    return isinstance(text, str) and text.endswith("i")


def canonical(amount: Decimal, binary: bool = False) -> str:
    """``amount`` as Kubernetes prints it: the largest suffix that keeps an integer (``1Gi``,
    ``2560Mi``, ``1500``, ``2k``), milli-units below one (``500m``), ``0`` for nothing."""
    if amount == 0:
        return "0"
    if amount != amount.to_integral_value():
        milli = amount * 1000
        if milli == milli.to_integral_value():
            return f"{int(milli)}m"
        return format(amount.normalize(), "f")
    whole = int(amount)
    for suffix, power in _BINARY if binary else _DECIMAL:
        unit = 1024**power if binary else 10**power
        if whole % unit == 0:
            return f"{whole // unit}{suffix}"
    return str(whole)


def text(raw: object) -> str:
    """The canonical text of a quantity as written (``1000m`` → ``1``, ``1024Mi`` → ``1Gi``)."""
    return canonical(value(raw), is_binary(raw))


def add(into: dict[str, Decimal], items: Mapping[str, Any] | None) -> dict[str, Decimal]:
    for name, raw in (items or {}).items():
        into[name] = into.get(name, Decimal(0)) + value(raw)
    return into


def total(lists: Iterable[Mapping[str, Any] | None]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for items in lists:
        add(out, items)
    return out
