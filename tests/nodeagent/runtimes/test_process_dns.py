"""The process runtime honours the sandbox's ``dns_config``: a host-filesystem container in the
namespaced modes reads the pod's resolv.conf at /etc/resolv.conf (bound in its private mount
namespace; the host's file stays as it was), and an image root gets it as its resolv.conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.cri import api_pb2 as pb
from nodeagent.runtimes.process import rootfs
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.runtime import ProcessRuntime, pod_resolv_conf
from tests.nodeagent.runtimes.test_process_runtime import MODES, container, make_runtime, run, sandbox, start

DNS = pb.DNSConfig(
    servers=["10.96.0.10"],
    searches=["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"],
    options=["ndots:5"],
)
WANT = "nameserver 10.96.0.10\nsearch ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
NAMESPACED = [p for p in MODES if p.id != "plain"]


def with_dns(tmp: Path) -> pb.PodSandboxConfig:
    sc = sandbox(tmp, "dnspod")
    sc.dns_config.CopyFrom(DNS)
    return sc


async def read_resolv_conf(rt: ProcessRuntime, sc: pb.PodSandboxConfig) -> str:
    _, cid = await start(rt, sc, container("c", ["sleep", "60"]))
    stream = await rt.exec_stream(cid, ["cat", "/etc/resolv.conf"])
    out, _ = await stream.process.communicate()
    return out.decode()


@pytest.mark.parametrize("iso", NAMESPACED)
def test_container_sees_the_pods_resolv_conf(tmp_path: Path, iso: Isolation) -> None:
    host_before = Path("/etc/resolv.conf").read_text()

    async def body(rt: ProcessRuntime) -> None:
        assert await read_resolv_conf(rt, with_dns(tmp_path)) == WANT
        assert Path("/etc/resolv.conf").read_text() == host_before  # nothing leaked to the host

    run(make_runtime(tmp_path, iso), body)


@pytest.mark.parametrize("iso", MODES)
def test_without_dns_config_the_hosts_applies(tmp_path: Path, iso: Isolation) -> None:
    async def body(rt: ProcessRuntime) -> None:
        assert (
            await read_resolv_conf(rt, sandbox(tmp_path, "plainpod")) == Path("/etc/resolv.conf").read_text()
        )

    run(make_runtime(tmp_path, iso), body)


def test_resolv_conf_text_and_image_root_files(tmp_path: Path) -> None:
    sc = with_dns(tmp_path)
    assert pod_resolv_conf(sc) == WANT
    assert pod_resolv_conf(sandbox(tmp_path)) is None
    rootfs.prepare(str(tmp_path / "state"), "dnspod", resolv_text=WANT)
    path = tmp_path / "state" / "resolv.conf"
    assert path.read_text() == WANT and path.stat().st_mode & 0o777 == 0o644
    argv = rootfs.bind_resolv_argv("/x/resolv.conf", ["sleep", "1"], 7)
    assert argv[-5:] == ["/x/resolv.conf", "7", "0", "sleep", "1"]
