"""Local OCI images: a deterministic image-layout writer (`oci`) and the node's offline busybox and
pause images (`busybox`). Stdlib only; no registry, no Go tools."""

from nodeagent.images.busybox import BUSYBOX_IMAGE, PAUSE_IMAGE, BusyboxMissing, write_images
from nodeagent.images.oci import BuiltImage, Entry, ImageSpec, build, layout_tar, write_layout_tar

__all__ = [
    "BUSYBOX_IMAGE",
    "PAUSE_IMAGE",
    "BuiltImage",
    "BusyboxMissing",
    "Entry",
    "ImageSpec",
    "build",
    "layout_tar",
    "write_images",
    "write_layout_tar",
]
