"""CronJob schedules: parsing, macros, time zones, next times and missed-run detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cluster.controllers.cronjob.schedule import (
    MAX_MISSED,
    ScheduleError,
    TimeZoneError,
    earliest_time,
    most_recent_schedule,
    parse_schedule,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("schedule", "zone", "after", "expected"),
    [
        pytest.param(
            "*/1 * * * *", None, utc(2026, 1, 1, 12, 0, 30), utc(2026, 1, 1, 12, 1), id="every-minute"
        ),
        pytest.param(
            "*/5 * * * *", None, utc(2026, 1, 1, 12, 5), utc(2026, 1, 1, 12, 10), id="strictly-after"
        ),
        pytest.param("@hourly", None, utc(2026, 1, 1, 12, 30), utc(2026, 1, 1, 13), id="hourly"),
        pytest.param("@daily", None, utc(2026, 1, 1, 12), utc(2026, 1, 2), id="daily"),
        pytest.param("@midnight", None, utc(2026, 1, 1, 12), utc(2026, 1, 2), id="midnight"),
        pytest.param("@weekly", None, utc(2026, 1, 1, 12), utc(2026, 1, 4), id="weekly-sunday"),
        pytest.param("@monthly", None, utc(2026, 1, 15), utc(2026, 2, 1), id="monthly"),
        pytest.param("@yearly", None, utc(2026, 1, 15), utc(2027, 1, 1), id="yearly"),
        pytest.param(
            "0 9 * * *", "Asia/Tokyo", utc(2026, 1, 1, 12), utc(2026, 1, 2, 0), id="tokyo-9am-is-0-utc"
        ),
        pytest.param(
            "0 9 * * *",
            "America/New_York",
            utc(2026, 7, 1, 12),
            utc(2026, 7, 1, 13),
            id="new-york-summer-time",
        ),
        pytest.param(
            "0 9 * * *",
            "America/New_York",
            utc(2026, 1, 1, 12),
            utc(2026, 1, 1, 14),
            id="new-york-winter-time",
        ),
        pytest.param(
            "TZ=Asia/Tokyo 0 9 * * *", None, utc(2026, 1, 1, 12), utc(2026, 1, 2, 0), id="tz-prefix"
        ),
        pytest.param("0 0 * * 1-5", None, utc(2026, 1, 2, 1), utc(2026, 1, 5), id="weekdays-skip-weekend"),
    ],
)
def test_next_after(schedule: str, zone: str | None, after: datetime, expected: datetime) -> None:
    nxt = parse_schedule(schedule, zone).next_after(after)
    assert nxt == expected
    assert nxt.tzinfo is not None and nxt.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param("61 * * * *", id="minute-out-of-range"),
        pytest.param("* * * *", id="four-fields"),
        pytest.param("0 * * * * *", id="six-fields"),
        pytest.param("@sometimes", id="unknown-macro"),
        pytest.param("", id="empty"),
    ],
)
def test_unparseable_schedules(schedule: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(schedule)


def test_unknown_time_zone() -> None:
    with pytest.raises(TimeZoneError):
        parse_schedule("* * * * *", "Mars/Olympus_Mons")


@pytest.mark.parametrize(
    ("last", "created", "now", "deadline", "expected"),
    [
        pytest.param(None, utc(2026, 1, 1), utc(2026, 1, 2), None, utc(2026, 1, 1), id="creation-time"),
        pytest.param(
            utc(2026, 1, 1, 5), utc(2026, 1, 1), utc(2026, 1, 2), None, utc(2026, 1, 1, 5), id="last-run"
        ),
        pytest.param(
            utc(2026, 1, 1, 5),
            utc(2026, 1, 1),
            utc(2026, 1, 2),
            60,
            utc(2026, 1, 1, 23, 59),
            id="deadline-later",
        ),
        pytest.param(
            utc(2026, 1, 1, 23, 59, 30),
            utc(2026, 1, 1),
            utc(2026, 1, 2),
            60,
            utc(2026, 1, 1, 23, 59, 30),
            id="last-run-later-than-deadline",
        ),
    ],
)
def test_earliest_time(
    last: datetime | None, created: datetime, now: datetime, deadline: int | None, expected: datetime
) -> None:
    assert earliest_time(last, created, now, deadline) == expected


@pytest.mark.parametrize(
    ("schedule", "earliest", "now", "most_recent", "count", "too_many"),
    [
        pytest.param(
            "*/1 * * * *", utc(2026, 1, 1, 12), utc(2026, 1, 1, 12, 0, 59), None, 0, False, id="none-yet"
        ),
        pytest.param(
            "*/1 * * * *",
            utc(2026, 1, 1, 12),
            utc(2026, 1, 1, 12, 1, 5),
            utc(2026, 1, 1, 12, 1),
            1,
            False,
            id="one",
        ),
        pytest.param(
            "*/1 * * * *",
            utc(2026, 1, 1, 12),
            utc(2026, 1, 1, 12, 7, 5),
            utc(2026, 1, 1, 12, 7),
            7,
            False,
            id="several-missed-most-recent-wins",
        ),
        pytest.param(
            "@hourly",
            utc(2026, 1, 1),
            utc(2026, 1, 5, 4, 30),
            utc(2026, 1, 5, 4),
            100,
            False,
            id="exactly-100",
        ),
        pytest.param(
            "@hourly", utc(2026, 1, 1), utc(2026, 1, 5, 5, 30), None, MAX_MISSED + 1, True, id="101-too-many"
        ),
        pytest.param(
            "*/1 * * * *",
            utc(2026, 1, 1, 12, 5),
            utc(2026, 1, 1, 12),
            None,
            0,
            False,
            id="earliest-after-now",
        ),
    ],
)
def test_most_recent_schedule(
    schedule: str,
    earliest: datetime,
    now: datetime,
    most_recent: datetime | None,
    count: int,
    too_many: bool,
) -> None:
    missed = most_recent_schedule(parse_schedule(schedule), earliest, now)
    assert (missed.most_recent, missed.count, missed.too_many) == (most_recent, count, too_many)
