"""RFC 3339 text for metav1.Time and MicroTime, and parsing it back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cluster.machinery.times import parse_rfc3339, rfc3339, rfc3339_micro

AT = datetime(2026, 12, 4, 22, 5, 9, 123456, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("when", "text", "micro"),
    [
        pytest.param(AT, "2026-12-04T22:05:09Z", "2026-12-04T22:05:09.123456Z", id="utc"),
        pytest.param(
            AT.astimezone(PLUS_TWO), "2026-12-04T22:05:09Z", "2026-12-04T22:05:09.123456Z", id="offset-to-utc"
        ),
        pytest.param(
            AT.replace(tzinfo=None), "2026-12-04T22:05:09Z", "2026-12-04T22:05:09.123456Z", id="naive-is-utc"
        ),
    ],
)
def test_format(when: datetime, text: str, micro: str) -> None:
    assert rfc3339(when) == text
    assert rfc3339_micro(when) == micro


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2026-12-04T22:05:09Z", AT.replace(microsecond=0), id="time"),
        pytest.param("2026-12-04T22:05:09.123456Z", AT, id="micro-time"),
        pytest.param("2026-12-05T00:05:09.123456+02:00", AT, id="offset"),
        pytest.param("2026-12-04T22:05:09", AT.replace(microsecond=0), id="no-offset-is-utc"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="null"),
        pytest.param(17, None, id="number"),
        pytest.param("yesterday", None, id="garbage"),
    ],
)
def test_parse(value: object, expected: datetime | None) -> None:
    parsed = parse_rfc3339(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None


def test_round_trip() -> None:
    assert parse_rfc3339(rfc3339_micro(AT)) == AT
