"""Where a hostpath volume's bytes live, and the filesystem work on them.

Layout under the plugin's root directory (``CSIContext.root_dir``)::

    volumes/<volume id>/      the volume's data: a plain directory, or the mount point of its image
    images/<volume id>.img    enforced volumes: a sparse file formatted ext4, loop-mounted when staged
    records/<volume id>.json  what the driver remembers (records.py)

Capacity is enforced when the volume is an image: its filesystem is exactly as large as the
volume, so writes beyond it fail with ENOSPC. That needs root, a loop device and mkfs.ext4;
``loop_unavailable`` says why a machine cannot, and such a machine gets plain directories whose
size is a label only (``capacity_enforced: "false"`` in the volume context).

An image is mounted at ``volumes/<id>`` while at least one staging path uses it, and bind mounts
of that directory are what staging and publishing make; so one filesystem is mounted once however
many paths show it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from cluster.machinery import mountinfo
from cluster.machinery.files import private_dir
from nodeagent.csi.hostpath import mounts
from nodeagent.csi.hostpath.records import VolumeRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Usage:
    """NodeGetVolumeStats' numbers for one volume (inodes 0 when unknown)."""

    bytes_total: int
    bytes_used: int
    bytes_available: int
    inodes_total: int
    inodes_used: int
    inodes_available: int


@dataclass(frozen=True, slots=True)
class LoopSupport:
    """What the machine allows: ``unavailable`` says why volumes cannot be loop filesystems (None:
    they can); ``online_resize`` whether a mounted one can grow (resize2fs needs CAP_SYS_RESOURCE)."""

    unavailable: str | None
    online_resize: bool = False


async def probe_loop(root: str) -> LoopSupport:
    """Find out by doing it: make, mount, grow and unmount a small loop filesystem under ``root``
    (root alone is not enough in a container without loop devices or CAP_SYS_RESOURCE)."""
    if os.geteuid() != 0:
        return LoopSupport("not running as root (loop mounts need it)")
    for tool in ("mkfs.ext4", "losetup", "mount", "umount", "e2fsck", "resize2fs"):
        if shutil.which(tool) is None:
            return LoopSupport(f"{tool} is not installed (e2fsprogs, util-linux)")
    private_dir(root)
    with tempfile.TemporaryDirectory(prefix=".loop-probe-", dir=root) as tmp:
        image, point = os.path.join(tmp, "probe.img"), os.path.join(tmp, "mnt")
        os.mkdir(point)
        try:
            await mounts.make_image(image, 4 * 1024 * 1024)
            await mounts.mount_image(image, point)
        except (OSError, mounts.MountError) as err:
            return LoopSupport(f"a loop filesystem cannot be mounted here: {err}")
        try:
            entry = mounts.top_mount(point)
            online = entry is not None
            if entry is not None:
                await mounts.grow_online(image, 8 * 1024 * 1024, entry.source)
        except (OSError, mounts.MountError) as err:
            log.info("hostpath: mounted volumes cannot grow online here: %s", err)
            online = False
        finally:
            await mounts.unmount(point)
    return LoopSupport(None, online)


class Storage:
    """The volumes' data under ``root``. Callers serialize calls per volume (the plugin's lock)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.volumes = self.root / "volumes"
        self.images = self.root / "images"

    def prepare(self) -> None:
        private_dir(self.volumes)
        private_dir(self.images)

    def data_dir(self, volume_id: str) -> str:
        return str(self.volumes / volume_id)

    def image(self, volume_id: str) -> str:
        return str(self.images / f"{volume_id}.img")

    def host_fs_type(self) -> str:
        """The filesystem type under ``root`` (what a plain-directory volume has), from mountinfo."""
        real = os.path.realpath(self.root)
        best = max(
            (
                e
                for e in mountinfo.table()
                if real == e.mount_point or real.startswith(e.mount_point.rstrip("/") + "/")
            ),
            key=lambda e: len(e.mount_point),
            default=None,
        )
        return best.fs_type if best else ""

    def free_bytes(self) -> int:
        """Space left on the filesystem holding the volumes (images are sparse: they take what is
        written, so this is what new volumes can really use)."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    async def create(self, rec: VolumeRecord) -> VolumeRecord:
        """Make the volume's data (idempotent: a half-made one from a crash is made again)."""
        data = self.data_dir(rec.volume_id)
        if rec.enforced:
            await mounts.unmount(data)
            os.makedirs(data, exist_ok=True)
            await mounts.make_image(self.image(rec.volume_id), rec.capacity_bytes)
            return replace(rec, fs_bytes=rec.capacity_bytes)
        # a pod's user need not be root: the directory is open to all, as the kubelet's hostPath
        # provisioner and local-path make it
        os.makedirs(data, exist_ok=True)
        os.chmod(data, 0o777)
        return rec

    async def delete(self, rec: VolumeRecord) -> None:
        """Remove the volume's data for good; idempotent."""
        data = self.data_dir(rec.volume_id)
        await mounts.unmount(data)
        Path(self.image(rec.volume_id)).unlink(missing_ok=True)
        if os.path.lexists(data):
            shutil.rmtree(data)

    async def activate(self, rec: VolumeRecord) -> VolumeRecord:
        """Make ``data_dir`` show the volume: mount an image (growing its filesystem first when an
        expansion is pending). Plain directories are always there."""
        data = self.data_dir(rec.volume_id)
        if not rec.enforced:
            os.makedirs(data, exist_ok=True)
            return rec
        if mountinfo.is_mount_point(data):
            return rec
        os.makedirs(data, exist_ok=True)
        image = self.image(rec.volume_id)
        live = mounts.loop_devices(image)
        if live:
            # another mount namespace (a container's) still has the filesystem: mount that same
            # device again; attaching the file a second time or growing it offline would corrupt it
            await mounts.run("mount", "-t", "ext4", live[0], data)
            return rec
        if rec.fs_bytes < rec.capacity_bytes:
            await mounts.grow_image_offline(image, rec.capacity_bytes)
            rec = replace(rec, fs_bytes=rec.capacity_bytes)
        await mounts.mount_image(image, data)
        # the filesystem root belongs to root and is 0755 after mkfs; pods of any user write to it
        os.chmod(data, 0o777)
        return rec

    async def deactivate(self, rec: VolumeRecord) -> None:
        """Unmount an image's filesystem (its loop device detaches with it)."""
        if rec.enforced:
            await mounts.unmount(self.data_dir(rec.volume_id))

    def active(self, rec: VolumeRecord) -> bool:
        return (not rec.enforced) or mountinfo.is_mount_point(self.data_dir(rec.volume_id))

    async def grow_offline(self, rec: VolumeRecord, size: int) -> VolumeRecord:
        """Grow an unmounted image and its filesystem now."""
        await mounts.grow_image_offline(self.image(rec.volume_id), size)
        return replace(rec, capacity_bytes=size, fs_bytes=size)

    async def grow_file(self, rec: VolumeRecord, size: int) -> VolumeRecord:
        """Grow a mounted image's file only; its filesystem grows in NodeExpandVolume."""
        with open(self.image(rec.volume_id), "r+b") as f:
            f.truncate(size)
        return replace(rec, capacity_bytes=size)

    def holders(self, rec: VolumeRecord) -> list[int]:
        """Processes of other mount namespaces that have the volume's image mounted."""
        return [
            pid
            for dev in mounts.loop_devices(self.image(rec.volume_id))
            for pid in mounts.held_elsewhere(dev)
        ]

    async def grow_mounted_fs(self, rec: VolumeRecord) -> VolumeRecord:
        """Grow the mounted filesystem to the image's size (online resize2fs); raises MountError
        when the kernel refuses (it needs CAP_SYS_RESOURCE)."""
        entry = mounts.top_mount(self.data_dir(rec.volume_id))
        if entry is None:
            raise mounts.MountError(f"volume {rec.volume_id} is not mounted")
        await mounts.grow_online(self.image(rec.volume_id), rec.capacity_bytes, entry.source)
        return replace(rec, fs_bytes=rec.capacity_bytes)

    def usage(self, rec: VolumeRecord, path: str) -> Usage:
        """Bytes and inodes of the volume seen at ``path``. An image's filesystem counts itself;
        a plain directory's usage is summed from its files and its total is the nominal size."""
        st = os.statvfs(path)
        if rec.enforced:
            return Usage(
                bytes_total=st.f_blocks * st.f_frsize,
                bytes_used=(st.f_blocks - st.f_bfree) * st.f_frsize,
                bytes_available=st.f_bavail * st.f_frsize,
                inodes_total=st.f_files,
                inodes_used=st.f_files - st.f_ffree,
                inodes_available=st.f_favail,
            )
        used, files = _du(path)
        host_free = st.f_bavail * st.f_frsize
        return Usage(
            bytes_total=rec.capacity_bytes,
            bytes_used=used,
            bytes_available=max(0, min(rec.capacity_bytes - used, host_free)),
            inodes_total=st.f_files,
            inodes_used=files,
            inodes_available=st.f_favail,
        )


def _du(path: str) -> tuple[int, int]:
    """Allocated bytes and entries below ``path`` (not following symlinks, not crossing mounts)."""
    total, count = 0, 0
    dev = os.lstat(path).st_dev
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            count += 1
            total += st.st_blocks * 512
        dirnames[:] = [d for d in dirnames if os.lstat(os.path.join(dirpath, d)).st_dev == dev]
    return total, count
