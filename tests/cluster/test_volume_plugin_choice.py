"""`raykube up --volume-plugin`: the choice kept in cluster.json, refused before Ray when unknown or
changed, and the storage objects the built-in driver brings."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.storage_defaults import DEFAULT_CLASS_ANNOTATION, hostpath_csidriver, standard_storageclass
from cluster.up_config import ClusterConfig, UpConfig, UpRefused, chosen_volume_plugin


def test_default_is_hostpath_and_cluster_json_keeps_the_choice(tmp_path: Path) -> None:
    assert chosen_volume_plugin(UpConfig(data_dir=tmp_path), None) == "hostpath"
    ClusterConfig(replicas=1, volume_plugin="examples.tmpfs_csi:TmpfsPlugin").save(tmp_path)
    existing = ClusterConfig.load(tmp_path)
    assert existing is not None and existing.volume_plugin == "examples.tmpfs_csi:TmpfsPlugin"
    assert chosen_volume_plugin(UpConfig(data_dir=tmp_path), existing) == "examples.tmpfs_csi:TmpfsPlugin"
    # A cluster.json from before the flag: the default.
    assert chosen_volume_plugin(UpConfig(data_dir=tmp_path), ClusterConfig(replicas=1)) == "hostpath"
    assert chosen_volume_plugin(UpConfig(data_dir=tmp_path, volume_plugin="socket:/run/csi.sock"), None) == (
        "socket:/run/csi.sock"
    )


@pytest.mark.parametrize(
    ("asked", "had", "message"),
    [
        ("nfs", None, "--volume-plugin: unknown volume plugin 'nfs'"),
        ("socket:csi.sock", None, "give an absolute socket path"),
        ("nowhere.module:Plugin", None, "cannot import volume plugin module 'nowhere.module'"),
        ("hostpath", "examples.tmpfs_csi:TmpfsPlugin", "was created with --volume-plugin examples.tmpfs_csi"),
    ],
)
def test_refused_before_ray(tmp_path: Path, asked: str, had: str | None, message: str) -> None:
    existing = ClusterConfig(replicas=1, volume_plugin=had) if had else None
    with pytest.raises(UpRefused, match=message.replace(".", r"\.")):
        chosen_volume_plugin(UpConfig(data_dir=tmp_path, volume_plugin=asked), existing)


def test_storage_objects_of_the_builtin_driver() -> None:
    driver = hostpath_csidriver()
    assert driver["metadata"]["name"] == "hostpath.csi.raykube.io"
    assert driver["spec"] == {
        "attachRequired": False,
        "podInfoOnMount": True,
        "volumeLifecycleModes": ["Persistent", "Ephemeral"],
    }
    sc = standard_storageclass()
    assert sc["metadata"] == {"name": "standard", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}}
    assert (sc["provisioner"], sc["volumeBindingMode"], sc["reclaimPolicy"], sc["allowVolumeExpansion"]) == (
        "hostpath.csi.raykube.io",
        "WaitForFirstConsumer",
        "Delete",
        True,
    )
