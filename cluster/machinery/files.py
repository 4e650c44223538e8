"""Private files and directories: how everything under a raykube data directory is created.

A data directory holds the store's WAL and snapshots (Secrets in plain text), the cluster CA's key,
admin and node credentials: nothing in it is for other local users. As etcd does, directories are
0700 and files 0600, set when they are created (``mkdir``/``open`` with the mode, then an explicit
``chmod`` because the umask may strip bits but must not decide them), never by a ``chmod`` after the
content is already there. Files that hold whole documents are written atomically (temporary file in
the same directory with the final mode, fsync, rename) so readers see the old or the new content.

Paths whose modes the owner of the content decides (image root filesystems keep the image's modes;
containerd creates its own state) are not written through here; the data-directory test lists them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str], *, tighten: bool = False) -> Path:
    """Create ``path`` and its missing parents as 0700 directories; return it as a ``Path``.

    Existing directories keep their mode (a ``--manifests-dir`` the user made is theirs), unless
    ``tighten``: then ``path`` itself becomes 0700 (the data directory's root on ``raykube up``, so
    one written by an older raykube with 0755 stops being traversable by others). Safe to call
    concurrently from several processes.
    """
    target = Path(path)
    missing: list[Path] = []
    for candidate in (target, *target.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue
        os.chmod(directory, DIR_MODE)  # the umask may have stripped owner bits; it must not add any
    if tighten and target not in missing:
        os.chmod(target, DIR_MODE)
    return target


def write_file_atomic(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new content, never a torn file.

    The temporary file is created with ``mode`` already set, so a key is never readable by others,
    even briefly. The parent directory must exist.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_private(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Atomically write ``data`` (text as UTF-8) to ``path`` as a 0600 file, creating its directory
    privately; return the path. For small files written whole (configs, credentials, markers)."""
    target = Path(path)
    private_dir(target.parent)
    write_file_atomic(target, data.encode() if isinstance(data, str) else data, mode=FILE_MODE)
    return target


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """``os.open`` with ``O_CREAT`` and mode 0600 (the mode only matters when the file is created)."""
    return os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
