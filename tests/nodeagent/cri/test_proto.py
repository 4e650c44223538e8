"""The CRI stubs: fresh relative to proto/cri/api.proto, and wire-compatible with upstream runtime.v1."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.cri import _generate
from tests.stubs import assert_fresh

COMMITTED_DIR = _generate.STUBS.committed_dir


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    assert_fresh(_generate.STUBS, tmp_path)


def test_grpc_module_imports_by_package_path() -> None:
    text = (COMMITTED_DIR / "api_pb2_grpc.py").read_text()
    assert "from nodeagent.cri import api_pb2" in text


RUNTIME_RPCS = {
    "Version", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus", "ListPodSandbox",
    "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer", "ListContainers",
    "ContainerStatus", "ExecSync", "Exec", "ReopenContainerLog", "Status",
}  # fmt: skip
IMAGE_RPCS = {"ListImages", "ImageStatus", "PullImage", "RemoveImage"}


def test_services_are_runtime_v1() -> None:
    from nodeagent.cri import api_pb2

    rt = api_pb2.DESCRIPTOR.services_by_name["RuntimeService"]
    im = api_pb2.DESCRIPTOR.services_by_name["ImageService"]
    assert api_pb2.DESCRIPTOR.package == "runtime.v1"
    assert rt.full_name == "runtime.v1.RuntimeService"
    assert im.full_name == "runtime.v1.ImageService"
    assert {m.name for m in rt.methods} == RUNTIME_RPCS
    assert {m.name for m in im.methods} == IMAGE_RPCS


# (message, field, upstream number) — a sample across every message the node agent and the
# runtimes touch, copied from the published CRI spec. A renumbering breaks containerd silently,
# so each is checked here.
UPSTREAM_NUMBERS = [
    ("VersionResponse", "runtime_api_version", 4),
    ("PodSandboxConfig", "metadata", 1),
    ("PodSandboxConfig", "hostname", 2),
    ("PodSandboxConfig", "log_directory", 3),
    ("PodSandboxConfig", "dns_config", 4),
    ("PodSandboxConfig", "port_mappings", 5),
    ("PodSandboxConfig", "labels", 6),
    ("PodSandboxConfig", "annotations", 7),
    ("PodSandboxConfig", "linux", 8),
    ("LinuxPodSandboxConfig", "security_context", 2),
    ("LinuxSandboxSecurityContext", "namespace_options", 1),
    ("LinuxSandboxSecurityContext", "run_as_group", 8),
    ("NamespaceOption", "target_id", 4),
    ("PortMapping", "host_ip", 4),
    ("PodSandboxStatus", "network", 5),
    ("PodSandboxStatus", "runtime_handler", 9),
    ("PodSandboxNetworkStatus", "ip", 1),
    ("ContainerConfig", "log_path", 11),
    ("ContainerConfig", "stdin", 12),
    ("ContainerConfig", "stdin_once", 13),
    ("ContainerConfig", "tty", 14),
    ("ContainerConfig", "linux", 15),
    ("ContainerConfig", "labels", 9),
    ("ContainerConfig", "envs", 6),
    ("ContainerConfig", "mounts", 7),
    ("LinuxContainerResources", "memory_limit_in_bytes", 4),
    ("LinuxContainerResources", "unified", 9),
    ("LinuxContainerSecurityContext", "run_as_group", 12),
    ("ImageSpec", "user_specified_image", 18),
    ("ContainerStatus", "exit_code", 7),
    ("ContainerStatus", "reason", 10),
    ("ContainerStatus", "log_path", 15),
    ("ContainerStatus", "image_id", 17),
    ("Container", "image_id", 10),
    ("ContainerFilter", "label_selector", 4),
    ("PodSandboxFilter", "label_selector", 3),
    ("ExecSyncRequest", "timeout", 3),
    ("ExecSyncResponse", "exit_code", 3),
    ("ExecRequest", "stderr", 6),
    ("StopContainerRequest", "timeout", 2),
    ("Image", "pinned", 8),
    ("PullImageRequest", "sandbox_config", 3),
    ("StatusResponse", "info", 2),
]


@pytest.mark.parametrize(
    ("message", "field", "number"), [pytest.param(*row, id=f"{row[0]}.{row[1]}") for row in UPSTREAM_NUMBERS]
)
def test_field_numbers_match_upstream(message: str, field: str, number: int) -> None:
    from nodeagent.cri import api_pb2

    assert api_pb2.DESCRIPTOR.message_types_by_name[message].fields_by_name[field].number == number


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        pytest.param(
            "ContainerState",
            {"CONTAINER_CREATED": 0, "CONTAINER_RUNNING": 1, "CONTAINER_EXITED": 2, "CONTAINER_UNKNOWN": 3},
            id="ContainerState",
        ),
        pytest.param("PodSandboxState", {"SANDBOX_READY": 0, "SANDBOX_NOTREADY": 1}, id="PodSandboxState"),
        pytest.param("NamespaceMode", {"POD": 0, "CONTAINER": 1, "NODE": 2, "TARGET": 3}, id="NamespaceMode"),
        pytest.param("Protocol", {"TCP": 0, "UDP": 1, "SCTP": 2}, id="Protocol"),
    ],
)
def test_enum_values_match_upstream(enum: str, values: dict[str, int]) -> None:
    from nodeagent.cri import api_pb2

    desc = api_pb2.DESCRIPTOR.enum_types_by_name[enum]
    assert {v.name: v.number for v in desc.values} == values
