"""CronJob schedules (kube's ``cron.ParseStandard`` and ``mostRecentScheduleTime``) over croniter.

A schedule is five fields (minute hour day-of-month month day-of-week) or one of the macros
``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly``; it is read
in ``spec.timeZone`` (an IANA name; UTC when unset). A ``TZ=``/``CRON_TZ=`` prefix in the schedule is
honoured as kube does, though kube marks it unsupported (:func:`has_tz_prefix` lets the caller warn).

Every time returned is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_MISSED = 100


class ScheduleError(ValueError):
    """The schedule cannot be parsed (kube's ``UnparseableSchedule``)."""


class TimeZoneError(ValueError):
    """``spec.timeZone`` names no known zone (kube's ``UnknownTimeZone``)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    expression: str
    zone: tzinfo

    def next_after(self, t: datetime) -> datetime:
        """The first scheduled time strictly after ``t``."""
        local = t.astimezone(self.zone)
        nxt: datetime = croniter(self.expression, local).get_next(datetime)
        return nxt.astimezone(UTC)


def has_tz_prefix(schedule: str) -> bool:
    return "TZ" in schedule


def load_zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise TimeZoneError(f"unknown time zone {name!r}") from err


def parse_schedule(schedule: str, time_zone: str | None = None) -> Schedule:
    """Parse ``schedule`` in ``time_zone``; :class:`TimeZoneError` or :class:`ScheduleError` if bad."""
    text = schedule.strip()
    zone = load_zone(time_zone)
    first, _, rest = text.partition(" ")
    if first.startswith(("TZ=", "CRON_TZ=")):
        zone = load_zone(first.partition("=")[2])
        text = rest.strip()
    text = MACROS.get(text, text)
    if len(text.split()) != 5 or not croniter.is_valid(text):
        raise ScheduleError(f"unparseable schedule: {schedule!r}")
    return Schedule(text, zone)


@dataclass(frozen=True, slots=True)
class Missed:
    """The latest scheduled time in ``(earliest, now]`` (None: none passed), and whether more than
    :data:`MAX_MISSED` passed (then ``most_recent`` is None and the caller must not start a Job)."""

    most_recent: datetime | None
    count: int
    too_many: bool = False


def earliest_time(
    last_schedule: datetime | None, created: datetime, now: datetime, starting_deadline: int | None
) -> datetime:
    """Where to look for unmet schedules from: the last scheduled time (or the creation time), but no
    earlier than ``now - startingDeadlineSeconds``."""
    earliest = last_schedule or created
    if starting_deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=starting_deadline))
    return earliest


def most_recent_schedule(schedule: Schedule, earliest: datetime, now: datetime) -> Missed:
    """Walk the scheduled times after ``earliest`` up to ``now`` (at most ``MAX_MISSED + 1`` steps)."""
    most_recent: datetime | None = None
    count = 0
    t = schedule.next_after(earliest)
    while t <= now:
        count += 1
        if count > MAX_MISSED:
            return Missed(None, count, too_many=True)
        most_recent = t
        t = schedule.next_after(t)
    return Missed(most_recent, count)
