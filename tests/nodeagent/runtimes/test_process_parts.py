"""Pure parts of the process runtime: isolation argv, image references, CRI log lines, cgroup limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.runtimes.process import images, logs
from nodeagent.runtimes.process.cgroups import CgroupManager, limits_for
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.procs import exit_code

CONTAINER_NS = ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "--"]


@pytest.mark.parametrize(
    ("mode", "host_network", "prefix"),
    [
        pytest.param("root", False, ["unshare", "--net", "--ipc", "--uts", "--"], id="root"),
        pytest.param("root", True, ["unshare", "--ipc", "--uts", "--"], id="root-host-network"),
        pytest.param(
            "userns",
            False,
            ["unshare", "--user", "--map-root-user", "--net", "--ipc", "--uts", "--"],
            id="userns",
        ),
        pytest.param("plain", False, [], id="plain"),
    ],
)
def test_holder_argv(mode: str, host_network: bool, prefix: list[str]) -> None:
    argv = Isolation(mode).holder_argv("pod-a", host_network=host_network)  # type: ignore[arg-type]
    assert argv[: len(prefix)] == prefix
    assert argv[-2:] == ["0" if mode == "plain" else "1", "pod-a"]


@pytest.mark.parametrize(
    ("mode", "want"),
    [
        pytest.param(
            "root",
            ["nsenter", "-t", "42", "--net", "--ipc", "--uts", "--", *CONTAINER_NS, "sleep", "1"],
            id="root",
        ),
        pytest.param(
            "userns",
            ["nsenter", "-t", "42", "--user", "--preserve-credentials", "--net", "--ipc", "--uts", "--",
             *CONTAINER_NS, "sleep", "1"],
            id="userns",
        ),
        pytest.param("plain", ["sleep", "1"], id="plain"),
    ],
)  # fmt: skip
def test_container_argv(mode: str, want: list[str]) -> None:
    assert Isolation(mode).container_argv(42, ["sleep", "1"]) == want  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "want"),
    [
        pytest.param(
            "root",
            ["nsenter", "-t", "7", "--net", "--ipc", "--uts", "--pid", "--mount", "--", "ps"],
            id="root",
        ),
        pytest.param("plain", ["ps"], id="plain"),
    ],
)
def test_exec_argv(mode: str, want: list[str]) -> None:
    assert Isolation(mode).exec_argv(7, ["ps"]) == want  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        pytest.param("busybox", "docker.io/library/busybox:latest", id="bare"),
        pytest.param("ubuntu:22.04", "docker.io/library/ubuntu:22.04", id="tag"),
        pytest.param("bitnami/redis", "docker.io/bitnami/redis:latest", id="user-repo"),
        pytest.param("quay.io/x/y:1", "quay.io/x/y:1", id="registry"),
        pytest.param("localhost:5000/x", "localhost:5000/x:latest", id="registry-port"),
        pytest.param("localhost/pause:3", "localhost/pause:3", id="localhost"),
        pytest.param("busybox@sha256:abc", "docker.io/library/busybox@sha256:abc", id="digest"),
    ],
)
def test_normalize(ref: str, want: str) -> None:
    assert images.normalize(ref) == want


def test_image_store_round_trip(tmp_path: Path) -> None:
    store = images.ImageStore(tmp_path)
    rec = store.pull("busybox")
    assert store.get("docker.io/library/busybox:latest") == rec
    assert store.get(rec.id) == rec
    assert store.get("busybox:1.0") is None
    assert images.ImageStore(tmp_path).list() == [rec]  # survives a restart
    store.remove("busybox")
    store.remove("busybox")
    assert store.list() == []


def test_rfc3339_nano() -> None:
    assert logs.rfc3339_nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert logs.format_line(0, "stderr", b"x", True) == b"1970-01-01T00:00:00.000000000Z stderr P x\n"


@pytest.mark.parametrize(
    ("buf", "eof", "records", "rest"),
    [
        pytest.param(b"a\nb\n", False, [(b"a", False), (b"b", False)], b"", id="lines"),
        pytest.param(b"a\nbc", False, [(b"a", False)], b"bc", id="tail-kept"),
        pytest.param(b"a\nbc", True, [(b"a", False), (b"bc", False)], b"", id="tail-flushed-at-eof"),
        pytest.param(b"\n", False, [(b"", False)], b"", id="empty-line"),
        pytest.param(
            b"x" * (logs.MAX_LINE + 3) + b"\n",
            False,
            [(b"x" * logs.MAX_LINE, True), (b"xxx", False)],
            b"",
            id="long-line-partial",
        ),
    ],
)
def test_split_records(buf: bytes, eof: bool, records: list[tuple[bytes, bool]], rest: bytes) -> None:
    assert logs.split_records(buf, eof) == (records, rest)


def test_log_writer_uses_injected_clock(tmp_path: Path) -> None:
    w = logs.LogWriter(tmp_path / "c" / "0.log", clock_ns=lambda: 0)
    w.write("stdout", [(b"hello", False)])
    w.close()
    assert (tmp_path / "c" / "0.log").read_bytes() == b"1970-01-01T00:00:00.000000000Z stdout F hello\n"


@pytest.mark.parametrize(
    ("args", "want"),
    [
        pytest.param((0, 0, 0, 0), {}, id="none"),
        pytest.param((64 << 20, 0, 0, 0), {"memory": {"memory.limit_in_bytes": str(64 << 20)}}, id="memory"),
        pytest.param(
            (0, 0, 50_000, 512),
            {"cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000", "cpu.shares": "512"}},
            id="cpu-default-period",
        ),
        pytest.param((0, 0, 0, 1), {"cpu": {"cpu.shares": "2"}}, id="shares-floor"),
    ],
)
def test_limits_for(args: tuple[int, int, int, int], want: dict[str, dict[str, str]]) -> None:
    assert limits_for(*args) == want


def test_cgroup_manager_on_a_fake_hierarchy(tmp_path: Path) -> None:
    for ctl in ("memory", "cpu"):
        (tmp_path / ctl).mkdir()
        (tmp_path / ctl / "cgroup.procs").write_text("")
    mgr = CgroupManager.probe("kit", root=tmp_path)
    assert mgr.writable == ("memory", "cpu")
    errors = mgr.create("c1", {"memory": {"memory.limit_in_bytes": "100"}, "pids": {"pids.max": "5"}})
    assert (tmp_path / "memory" / "kit" / "c1" / "memory.limit_in_bytes").read_text() == "100"
    assert errors == ["pids: not writable"]
    assert mgr.procs_files("c1") == [
        str(tmp_path / c / "kit" / "c1" / "cgroup.procs") for c in ("memory", "cpu")
    ]


def test_cgroup_manager_without_controllers(tmp_path: Path) -> None:
    mgr = CgroupManager.probe("kit", root=tmp_path)
    assert mgr.writable == () and "no writable" in mgr.reason


@pytest.mark.parametrize(
    ("rc", "want"),
    [pytest.param(0, 0, id="ok"), pytest.param(3, 3, id="3"), pytest.param(-9, 137, id="sigkill")],
)
def test_exit_code(rc: int, want: int) -> None:
    assert exit_code(rc) == want
