"""Hostile image layers: an import never acts outside its root filesystem (issue 9, point 1).

Each case imports, through the real ``ImageStore``, a layout whose layers try to reach a sentinel
directory beside the store (``outside/``, mode 0700, with a file and a subdirectory) by absolute and
relative symlinks, ``..``, absolute member names, hard links and whiteouts of ``.``/``..``, after
another image was imported. The import must either be refused with a clear ``LayoutError`` or land
the safe result inside the root; either way ``outside/`` (modes, mtimes, link counts, contents,
existence) and the other image's root filesystem stay exactly as they were.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodeagent.runtimes.process.images import ImageStore, LayoutError
from nodeagent.runtimes.process.layers import unpack_layers
from nodeagent.runtimes.process.oci_layout import read_layout
from tests.nodeagent.runtimes.test_process_images import make_layout

NAME = "io.containerd.image.name"
OTHER = "example.com/other:1"
OLD = 1_000_000_000  # mtime of everything outside, so a utime through a link shows


@dataclass(frozen=True, slots=True)
class M:
    """One tar member; ``{out}`` in a name or target is the outside directory's absolute path."""

    name: str
    kind: str = "file"  # file | dir | symlink | hardlink | chr | fifo
    target: str = ""
    mode: int = 0o644
    data: bytes = b"layer"


def _tar(members: list[M], out: Path) -> bytes:
    kinds = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "chr": tarfile.CHRTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            ti = tarfile.TarInfo(m.name.format(out=out))
            ti.type = kinds[m.kind]
            ti.mode = m.mode
            ti.mtime = 1_500_000_000
            ti.linkname = m.target.format(out=out)
            if m.kind == "chr":
                ti.devmajor, ti.devminor = 1, 3
            data = m.data if m.kind == "file" else b""
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _snapshot(top: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every entry under ``top`` (and ``top``) by lstat: mode, mtime, link count, file content."""
    out: dict[str, tuple[int, int, int, bytes]] = {}
    for path in [top, *sorted(top.rglob("*"))]:
        st = path.lstat()
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
        out[str(path.relative_to(top))] = (st.st_mode, st.st_mtime_ns, st.st_nlink, data)
    return out


def _changes(before: dict[str, tuple[int, int, int, bytes]], top: Path) -> list[str]:
    """What differs under ``top`` from ``before``: ``path: what`` lines (empty when nothing did)."""
    if not os.path.lexists(top):
        return [f"{top} was removed"]
    after = _snapshot(top)
    fields = ("mode", "mtime", "links", "content")
    out = [f"{p}: removed" for p in before.keys() - after.keys()]
    out += [f"{p}: created" for p in after.keys() - before.keys()]
    for p in before.keys() & after.keys():
        out += [
            f"{p}: {f} {before[p][i]!r} -> {after[p][i]!r}"
            for i, f in enumerate(fields)
            if before[p][i] != after[p][i]
        ]
    return sorted(out)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, ImageStore, Path]:
    """``outside/`` (a 0700 sentinel tree) beside a store holding another image: (outside, store, root)."""
    out = tmp_path / "outside"
    (out / "sub").mkdir(parents=True)
    (out / "secret").write_bytes(b"secret")
    os.chmod(out / "secret", 0o600)
    os.chmod(out / "sub", 0o700)
    os.chmod(out, 0o700)
    for p in (out / "secret", out / "sub", out):
        os.utime(p, (OLD, OLD))
    store = ImageStore(tmp_path / "images")
    make_layout(
        tmp_path / "other.tar",
        [_tar([M("bin/tool", data=b"other")], out)],
        {NAME: OTHER},
        {"Env": ["IMAGE=other"]},
    )
    other = Path(store.import_layout(str(tmp_path / "other.tar")).rootfs)
    return out, store, other


Check = Callable[[Path, Path], None]  # (image root, outside) -> asserts on the safe result


def _real_dir(rel: str, mode: int) -> Check:
    def check(root: Path, _out: Path) -> None:
        st = (root / rel).lstat()
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == mode, oct(st.st_mode)

    return check


def _symlink(rel: str) -> Check:
    def check(root: Path, _out: Path) -> None:
        assert (root / rel).is_symlink()

    return check


def _landed(rel: str, data: bytes = b"layer") -> Check:
    """A file the layer wrote lands inside the root (``{out}`` there is the outside path, rooted)."""

    def check(root: Path, out: Path) -> None:
        path = root / rel.format(out=str(out).lstrip("/"))
        assert not path.is_symlink() and path.read_bytes() == data

    return check


def _device(rel: str) -> Check:
    def check(root: Path, _out: Path) -> None:
        if os.geteuid() == 0:  # mknod only as root, and only inside the root
            assert stat.S_ISCHR((root / rel).lstat().st_mode)
        else:
            assert not os.path.lexists(root / rel)

    return check


SYM_OUT = M("d", "symlink", target="{out}")
CASES = [
    # A directory entry where a symlink to a directory is: the layer's real directory replaces it.
    pytest.param([[SYM_OUT], [M("d", "dir", mode=0o777)]], _real_dir("d", 0o777), id="dir-over-abs-symlink"),
    pytest.param(
        [[SYM_OUT, M("d", "dir", mode=0o777)]], _real_dir("d", 0o777), id="dir-over-symlink-same-layer"
    ),
    pytest.param(
        [[M("d", "symlink", target="../../../outside")], [M("d", "dir", mode=0o777)]],
        _real_dir("d", 0o777),
        id="dir-over-relative-symlink",
    ),
    # The final mode/mtime pass must not follow a link that replaced a directory of a lower layer.
    pytest.param([[M("d", "dir", mode=0o755)], [SYM_OUT]], _symlink("d"), id="symlink-over-dir"),
    pytest.param(
        [[SYM_OUT], [M("d", "dir", mode=0o755), M("d/.wh..wh..opq"), M("d/x")]],
        _landed("d/x"),
        id="opaque-dir-over-symlink",
    ),
    # Members under a symlinked parent, `..` and absolute names are scoped to the root (containerd).
    pytest.param([[SYM_OUT], [M("d/new")]], _landed("{out}/new"), id="file-under-symlinked-dir"),
    pytest.param([[M("../../../outside/new")]], _landed("outside/new"), id="dotdot-member"),
    pytest.param([[M("{out}/new")]], _landed("{out}/new"), id="absolute-member"),
    pytest.param(
        [[M("f", "symlink", target="{out}/secret")], [M("f", data=b"new")]],
        _landed("f", b"new"),
        id="file-over-symlink",
    ),
    pytest.param([[SYM_OUT], [M("d/.wh.secret")]], _symlink("d"), id="whiteout-under-symlinked-dir"),
    # Hard links: the target must be an entry of the image, never reached through a link.
    pytest.param(
        [[M("h", "hardlink", target="../../../outside/secret")]], "not in the image", id="hardlink-dotdot"
    ),
    pytest.param([[M("h", "hardlink", target="{out}/secret")]], "not in the image", id="hardlink-absolute"),
    pytest.param(
        [[SYM_OUT, M("h", "hardlink", target="d/secret")]],
        "not in the image",
        id="hardlink-via-symlinked-dir",
    ),
    pytest.param(
        [[M("s", "symlink", target="{out}/secret"), M("h", "hardlink", target="s")]],
        _symlink("h"),
        id="hardlink-to-symlink-links-the-link",
    ),
    # Whiteouts must name an entry of their own directory.
    pytest.param([[M("f")], [M(".wh..")]], "invalid whiteout", id="whiteout-dot"),
    pytest.param([[M("f")], [M(".wh...")]], "invalid whiteout", id="whiteout-dotdot"),
    pytest.param([[M("f")], [M(".wh.")]], "invalid whiteout", id="whiteout-empty"),
    pytest.param([[M("a", "dir")], [M("a/.wh...")]], "invalid whiteout", id="nested-whiteout-dotdot"),
    # Mount points the runtime adds: never created through a link.
    pytest.param(
        [[M("etc", "symlink", target="{out}")]], "/etc of the image is not a directory", id="etc-symlink"
    ),
    pytest.param(
        [[M("etc", "dir"), M("etc/hosts", "symlink", target="{out}/hosts")]],
        _landed("etc/hosts", b""),
        id="mount-file-symlink-replaced",
    ),
    pytest.param(
        [[M("a", "symlink", target="b"), M("b", "symlink", target="a")], [M("a/x")]],
        "too many symlinks",
        id="symlink-loop",
    ),
    pytest.param(
        [[M("dev", "dir"), M("dev/null0", "chr", mode=0o666)]], _device("dev/null0"), id="device-node"
    ),
]


@pytest.mark.parametrize("layers,expect", CASES)
def test_hostile_layers_never_act_outside_the_root(
    tmp_path: Path, world: tuple[Path, ImageStore, Path], layers: list[list[M]], expect: str | Check
) -> None:
    out, store, other = world
    before = (_snapshot(out), _snapshot(other))
    make_layout(
        tmp_path / "h.tar",
        [_tar(layer, out) for layer in layers],
        {NAME: "example.com/h:1"},
        {"Env": ["IMAGE=h"]},
    )
    try:
        root, error = Path(store.import_layout(str(tmp_path / "h.tar")).rootfs), ""
    except LayoutError as e:
        root, error = None, str(e)
    # First what matters most: nothing beside the image's root changed, whatever the outcome.
    assert _changes(before[0], out) == [] and _changes(before[1], other) == []
    if isinstance(expect, str):
        assert root is None and re.search(expect, error), f"expected a refusal matching {expect!r}: {error!r}"
        assert sorted(os.listdir(store.rootfs_dir)) == [other.name]  # the refused root is gone
    else:
        assert root is not None, f"refused: {error}"
        expect(root, out)
    survivor = ImageStore(tmp_path / "images").get(OTHER)
    assert survivor is not None and Path(survivor.rootfs, "bin", "tool").read_bytes() == b"other"


@pytest.mark.parametrize(
    "as_root",
    [
        pytest.param(False, id="non-root-skips"),
        pytest.param(
            True,
            id="root-makes-it-inside",
            marks=pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root"),
        ),
    ],
)
def test_device_nodes_need_root(tmp_path: Path, caplog: pytest.LogCaptureFixture, as_root: bool) -> None:
    members = [M("dev", "dir"), M("dev/null0", "chr", mode=0o666), M("dev/pipe", "fifo", mode=0o600)]
    layer = _tar(members, tmp_path)
    make_layout(tmp_path / "d.tar", [layer], {NAME: "example.com/d:1"}, {})
    (image,) = read_layout(str(tmp_path / "d.tar"), str(tmp_path / "work"))
    caplog.set_level(logging.WARNING)
    unpack_layers(image, str(tmp_path / "root"), as_root=as_root)
    node = tmp_path / "root" / "dev" / "null0"
    assert stat.S_ISFIFO((tmp_path / "root" / "dev" / "pipe").lstat().st_mode)
    if as_root:
        st = node.lstat()
        assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and stat.S_IMODE(st.st_mode) == 0o666
    else:
        assert not os.path.lexists(node)
        assert "skipping device node dev/null0: creating devices needs root" in caplog.text
