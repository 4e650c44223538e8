"""Write a volume's files so a running container sees either the old set or the new one, never a mix.

The kubelet's scheme (pkg/volume/util/atomic_writer.go), which containers and tools rely on:
the files live in a timestamped directory ``..<UTC time>.<random>``; ``..data`` is a symlink to the
current one; each top-level entry the user sees (``key``, or ``dir`` for ``dir/key``) is a symlink
``key -> ..data/key``. An update writes a new timestamped directory in full, points ``..data_tmp`` at
it and renames that over ``..data`` (one atomic rename), fixes the user-visible links, and removes the
old directory. A reader that resolved ``..data`` once reads one consistent version.

``write`` is idempotent: a payload equal to what ``..data`` holds (bytes and modes) changes nothing
and returns False. Paths must be relative, without ``..`` components and not start with ``..``.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from datetime import UTC, datetime

from nodeagent.volumes.plan import Payload

DATA = "..data"
DATA_TMP = "..data_tmp"


class PayloadError(ValueError):
    """A payload path the writer refuses (absolute, with ``..``, or hidden)."""


def validate(payload: Payload) -> None:
    for path in payload:
        parts = path.split("/")
        if not path or os.path.isabs(path) or ".." in parts or path.startswith(".."):
            raise PayloadError(
                f"invalid path {path!r}: must be relative, without '..' and not start with '..'"
            )


def _current(target: str) -> str | None:
    try:
        return os.path.join(target, os.readlink(os.path.join(target, DATA)))
    except OSError:
        return None


def _files(root: str) -> dict[str, tuple[bytes, int]]:
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            full = os.path.join(dirpath, n)
            with open(full, "rb") as f:
                out[os.path.relpath(full, root)] = (f.read(), stat.S_IMODE(os.lstat(full).st_mode))
    return out


def _same(current: str | None, payload: Payload) -> bool:
    if current is None or not os.path.isdir(current):
        return False
    return _files(current) == {p: (f.data, f.mode) for p, f in payload.items()}


def _user_entries(payload: Payload) -> set[str]:
    return {p.split("/", 1)[0] for p in payload}


def write(target: str, payload: Payload, now: datetime | None = None) -> bool:
    """Make ``target`` hold exactly ``payload``; True when something changed. ``target`` must exist."""
    validate(payload)
    current = _current(target)
    wanted = _user_entries(payload)
    if _same(current, payload):
        changed = False
    else:
        stamp = (now or datetime.now(UTC)).strftime("..%Y_%m_%d_%H_%M_%S.")
        new = tempfile.mkdtemp(prefix=stamp, dir=target)
        os.chmod(new, 0o755)
        for path, f in payload.items():
            full = os.path.join(new, path)
            os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL, f.mode)
            try:
                os.write(fd, f.data)
                os.fchmod(fd, f.mode)  # the umask must not narrow the mode the pod asked for
            finally:
                os.close(fd)
        tmp = os.path.join(target, DATA_TMP)
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.path.basename(new), tmp)
        os.rename(tmp, os.path.join(target, DATA))
        changed = True
    for entry in wanted:  # user-visible links (made after the swap, so they never dangle for long)
        link = os.path.join(target, entry)
        if os.path.islink(link) and os.readlink(link) == os.path.join(DATA, entry):
            continue
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.path.join(DATA, entry), link)
    for entry in os.listdir(target):
        if entry.startswith("..") or entry in wanted:
            continue
        full = os.path.join(target, entry)
        if os.path.islink(full):  # a key gone from the payload; never touch what we did not make
            os.unlink(full)
    live = os.path.basename(_current(target) or "")
    for entry in os.listdir(target):  # the old version, and any a crashed writer left half-written
        full = os.path.join(target, entry)
        if entry.startswith("..") and entry != live and not os.path.islink(full) and os.path.isdir(full):
            shutil.rmtree(full, ignore_errors=True)
    return changed


def read(target: str) -> dict[str, bytes]:
    """The current files by path (tests and diagnostics)."""
    current = _current(target)
    return {p: d for p, (d, _m) in _files(current).items()} if current else {}
