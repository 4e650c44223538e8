"""The sandbox config's port mappings: every container port with a hostPort, as kubelet sends them."""

from __future__ import annotations

from nodeagent.agent.cri_config import port_mappings, sandbox_config
from nodeagent.cri import api_pb2 as pb


def test_port_mappings_keep_host_ports_only() -> None:
    spec = {
        "containers": [
            {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9000}]},
            {
                "name": "b",
                "ports": [{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}],
            },
            {"name": "c"},
        ]
    }
    assert port_mappings(spec) == [
        pb.PortMapping(protocol=pb.TCP, container_port=80, host_port=8080),
        pb.PortMapping(protocol=pb.UDP, container_port=53, host_port=53, host_ip="10.0.0.1"),
    ]


def test_sandbox_config_carries_them() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}]},
    }
    cfg = sandbox_config(pod, 0, "/logs", "node-a")
    assert [(m.container_port, m.host_port) for m in cfg.port_mappings] == [(80, 8080)]
