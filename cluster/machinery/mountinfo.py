"""The kernel's mount table (``/proc/<pid>/mountinfo``), read one way for every raykube part.

``os.path.ismount`` misses a bind mount of a directory onto the same filesystem, which is what the
volume code makes all day, so mount points are read from mountinfo. Fields with a space, tab,
newline or backslash are written as three octal digits (``\\040``); ``unescape`` undoes that.
Later entries at the same mount point are stacked on top of earlier ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of mountinfo (the fields raykube reads)."""

    mount_point: str
    root: str
    source: str
    fs_type: str
    options: str


def unescape(field: str) -> str:
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        digits = field[i + 1 : i + 4]
        if field[i] == "\\" and len(digits) == 3 and digits.isdigit():
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse(text: str) -> list[MountEntry]:
    """The entries of a mountinfo text, in order; malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        entries.append(
            MountEntry(
                mount_point=unescape(fields[4]),
                root=unescape(fields[3]),
                source=unescape(tail[1]),
                fs_type=tail[0],
                options=fields[5],
            )
        )
    return entries


def table(pid: str = "self") -> list[MountEntry]:
    """The mount table of process ``pid`` (``self``: this process's mount namespace)."""
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return parse(f.read())


def is_mount_point(path: str) -> bool:
    real = os.path.realpath(path)
    return any(e.mount_point == real for e in table())


def mount_points_under(directory: str) -> list[str]:
    """Mount points at or below ``directory``, deepest first (the order to unmount them in)."""
    real = os.path.realpath(directory)
    found = {e.mount_point for e in table() if e.mount_point == real or e.mount_point.startswith(real + "/")}
    return sorted(found, key=lambda p: (-p.count("/"), p))
