"""``raykube store env``'s lines, read back through a real shell, and the recorded endpoints."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cluster.store.endpoints import env_text, store_endpoints
from cluster.store.network import Endpoint, record_endpoints


def test_env_text_exports_what_etcdctl_reads(tmp_path: Path) -> None:
    pki = tmp_path / "data dir's" / "pki"  # a space and a quote survive the shell
    text = env_text(["https://10.0.0.1:2379", "https://10.0.0.2:2381"], pki)
    assert all(line.startswith("export ETCDCTL_") for line in text.splitlines())
    names = ("API", "ENDPOINTS", "CACERT", "CERT", "KEY")
    script = text + 'printf "%s\\n" ' + " ".join(f'"$ETCDCTL_{name}"' for name in names)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env={}).stdout
    assert out.splitlines() == [
        "3",
        "https://10.0.0.1:2379,https://10.0.0.2:2381",
        str(pki / "ca.crt"),
        str(pki / "etcd" / "etcdctl.crt"),
        str(pki / "etcd" / "etcdctl.key"),
    ]


def test_store_endpoints_from_the_record_alone(tmp_path: Path) -> None:
    assert store_endpoints(data_dir=tmp_path) == []
    record_endpoints(
        tmp_path / "store", [Endpoint(3, "10.0.0.3", 2383, 2384), Endpoint(1, "10.0.0.1", 2379, 2380)]
    )
    assert store_endpoints(data_dir=tmp_path) == ["https://10.0.0.1:2379", "https://10.0.0.3:2383"]
