"""Resource quantities ("100m", "1Gi", "0.5", "1e3") parsed to exact Decimals: the one parser.

Grammar as in apimachinery's resource.ParseQuantity: a signed decimal number followed by an optional
binary-SI suffix (Ki..Ei), decimal-SI suffix (n, u, m, "", k, M, G, T, P, E) or decimal exponent
(e3, E-2). Parsing is exact (Decimal with enough precision); no rounding is applied. As in
Kubernetes, whitespace anywhere (also around the text) makes it malformed.

Users: the API server's validation (which turns ``QuantityError`` into field errors), the scheduler
(which caches values of the texts it sees again and again on top of this), the node agent.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, localcontext

_CTX = Context(prec=60)
QUANTITY_REGEX_TEXT = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
# ``(.*)`` does not match a newline, and ``\Z`` (not ``$``) refuses a trailing one: no whitespace passes.
_NUMBER_RE = re.compile(r"\A([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)\Z")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_EXPONENT_RE = re.compile(r"^[eE]([+-]?[0-9]+)$")


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity."""


def parse_quantity(value: object) -> Decimal:
    """Parse a quantity given as a string or a JSON number; raise QuantityError if malformed."""
    if isinstance(value, bool):
        raise QuantityError("quantities must be strings or numbers")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise QuantityError("quantities must be strings or numbers")
    m = _NUMBER_RE.match(value)
    if not m:
        raise QuantityError(f"quantities must match the regular expression '{QUANTITY_REGEX_TEXT}'")
    number, suffix = m.groups()
    with localcontext(_CTX):
        base = Decimal(number)
        if suffix in _BINARY:
            return base * (Decimal(1024) ** _BINARY[suffix])
        if suffix in _DECIMAL:
            return base.scaleb(_DECIMAL[suffix])
        exp = _EXPONENT_RE.match(suffix)
        if exp:
            return base.scaleb(int(exp.group(1)))
    raise QuantityError("unable to parse quantity's suffix")


def is_quantity(value: object) -> bool:
    """Whether ``parse_quantity`` accepts ``value``."""
    try:
        parse_quantity(value)
    except QuantityError:
        return False
    return True
