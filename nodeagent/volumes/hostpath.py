"""hostPath type checks, with the kubelet's messages (pkg/volume/hostpath: checkTypeInternal).

``""`` checks nothing; ``DirectoryOrCreate``/``FileOrCreate`` make a missing path (0755 directory,
0644 empty file, parents as needed); the others require what their name says.
"""

from __future__ import annotations

import os
import stat

from nodeagent.volumes.errors import VolumeError

_NEEDS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def check_type(path: str, path_type: str) -> None:
    """Raise ``VolumeError`` (the message the kubelet puts after ``MountVolume.SetUp failed ...``)."""
    if path_type == "":
        return
    if path_type == "DirectoryOrCreate":
        if not os.path.exists(path):
            os.makedirs(path, mode=0o755, exist_ok=True)
        path_type = "Directory"
    elif path_type == "FileOrCreate":
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            os.close(fd)
        path_type = "File"
    if path_type not in _NEEDS:
        raise VolumeError(f"{path_type} is an invalid volume type")
    test, what = _NEEDS[path_type]
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if not test(mode):
        raise VolumeError(f"hostPath type check failed: {path} is not {what}")
