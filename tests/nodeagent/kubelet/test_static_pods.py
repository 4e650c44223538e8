"""static_pods: reading manifests, kubelet defaults, scan diffs and mirror-pod actions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nodeagent.kubelet.static_pods import (
    HASH,
    MIRROR,
    SEEN,
    SOURCE,
    Manifest,
    MirrorDelete,
    diff,
    mirror_actions,
    mirror_pod,
    read_manifests,
    static_pod,
    static_pods,
)
from tests.nodeagent.kubelet.helpers import T0, at

DOC: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web"},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}


def write(tmp: Path, name: str, text: str) -> None:
    (tmp / name).write_text(text)


def test_read_manifests(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c}]}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: kube-system}\n"
        "spec: {containers: [{name: c}]}\n",
    )
    write(tmp_path, "c.json", json.dumps({**DOC, "metadata": {"name": "c"}}))
    write(
        tmp_path,
        ".hidden.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: h}\nspec: {containers: [{name: c}]}",
    )
    write(tmp_path, "notes.txt", "ignored")
    write(tmp_path, "bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    write(tmp_path, "broken.yml", "a: [unclosed\n")
    manifests, errors = read_manifests(str(tmp_path))
    assert [m.doc["metadata"]["name"] for m in manifests] == ["a", "b", "c"]
    assert [Path(e.path).name for e in errors] == ["bad.yaml", "broken.yml"]
    assert "only v1 Pods" in errors[0].message


def test_missing_dir_is_empty(tmp_path: Path) -> None:
    assert read_manifests(str(tmp_path / "none")) == ([], [])


def test_kubelet_defaults() -> None:
    pod = static_pod(Manifest("/m/web.yaml", DOC), "Node-A", T0)
    meta = pod["metadata"]
    assert meta["name"] == "web-node-a"
    assert meta["namespace"] == "default"
    assert pod["spec"]["nodeName"] == "Node-A"
    assert {"operator": "Exists", "effect": "NoExecute"} in pod["spec"]["tolerations"]
    assert meta["annotations"][SOURCE] == "file"
    assert meta["annotations"][HASH] == meta["uid"]
    assert meta["annotations"][SEEN] == "2026-01-01T12:00:00.000000Z"
    assert len(meta["uid"]) == 32
    assert DOC["metadata"] == {"name": "web"}  # input untouched


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param(("/m/web.yaml", "n1"), ("/m/web.yaml", "n1"), True, id="deterministic"),
        pytest.param(("/m/web.yaml", "n1"), ("/m/web.yaml", "n2"), False, id="node-matters"),
        pytest.param(("/m/web.yaml", "n1"), ("/m/other.yaml", "n1"), False, id="path-matters"),
    ],
)
def test_uid(a: tuple[str, str], b: tuple[str, str], same: bool) -> None:
    ua = static_pod(Manifest(a[0], DOC), a[1], T0)["metadata"]["uid"]
    ub = static_pod(Manifest(b[0], DOC), b[1], at(5))["metadata"]["uid"]
    assert (ua == ub) is same


def changed_doc() -> dict[str, Any]:
    return {**DOC, "spec": {"containers": [{"name": "c", "image": "ubuntu"}]}}


def test_diff_and_seen_kept() -> None:
    old = static_pods([Manifest("/m/web.yaml", DOC)], "n1", T0)
    same = static_pods([Manifest("/m/web.yaml", DOC)], "n1", at(60), previous=old)
    assert diff(old, same) == diff(old, old)
    assert next(iter(same.values()))["metadata"]["annotations"][SEEN] == "2026-01-01T12:00:00.000000Z"
    new = static_pods(
        [Manifest("/m/web.yaml", changed_doc()), Manifest("/m/x.yaml", {**DOC, "metadata": {"name": "x"}})],
        "n1",
        at(60),
        previous=old,
    )
    d = diff(old, new)
    assert sorted(p["metadata"]["name"] for p in d.added) == ["web-n1", "x-n1"]
    assert [p["metadata"]["name"] for p in d.removed] == ["web-n1"]
    assert d.changed == (("default", "web-n1"),)
    gone = diff(new, {})
    assert len(gone.removed) == 2 and not gone.added


def test_duplicate_names_first_wins() -> None:
    pods = static_pods([Manifest("/m/a.yaml", DOC), Manifest("/m/b.yaml", changed_doc())], "n1", T0)
    assert len(pods) == 1
    assert next(iter(pods.values()))["spec"]["containers"][0]["image"] == "busybox"


def test_mirror_pod() -> None:
    static = static_pod(Manifest("/m/web.yaml", DOC), "n1", T0)
    mirror = mirror_pod(static, "node-uid")
    meta = mirror["metadata"]
    assert "uid" not in meta and "status" not in mirror
    assert meta["annotations"][MIRROR] == static["metadata"]["uid"]
    assert meta["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "node-uid", "controller": True}
    ]


def api(pod: dict[str, Any], uid: str, **meta: Any) -> dict[str, Any]:
    return {**pod, "metadata": {**pod["metadata"], "uid": uid, **meta}}


STATIC = static_pods([Manifest("/m/web.yaml", DOC)], "n1", T0)
WEB = next(iter(STATIC.values()))
MIRROR_WEB = api(mirror_pod(WEB, "nu"), "m1")
STALE = api(mirror_pod(static_pod(Manifest("/m/web.yaml", changed_doc()), "n1", T0), "nu"), "m2")
ORPHAN = api(
    mirror_pod(static_pod(Manifest("/m/old.yaml", {**DOC, "metadata": {"name": "old"}}), "n1", T0), "nu"),
    "m3",
)
OTHER_NODE = api(
    mirror_pod(static_pod(Manifest("/m/old.yaml", {**DOC, "metadata": {"name": "o"}}), "n2", T0), "nu"), "m4"
)


@pytest.mark.parametrize(
    ("api_pods", "creates", "deletes"),
    [
        pytest.param([], ["web-n1"], [], id="create-missing"),
        pytest.param([MIRROR_WEB], [], [], id="in-sync"),
        pytest.param(
            [STALE], ["web-n1"], [MirrorDelete("default", "web-n1", "m2")], id="recreate-stale-hash"
        ),
        pytest.param([MIRROR_WEB, ORPHAN], [], [MirrorDelete("default", "old-n1", "m3")], id="delete-orphan"),
        pytest.param([MIRROR_WEB, OTHER_NODE], [], [], id="other-nodes-untouched"),
        pytest.param([api(MIRROR_WEB, "m1", deletionTimestamp="x")], [], [], id="wait-while-deleting"),
        pytest.param(
            [api({**WEB, "metadata": {"name": "web-n1", "namespace": "default"}}, "u")],
            [],
            [],
            id="non-mirror-name-clash-left-alone",
        ),
    ],
)
def test_mirror_actions(
    api_pods: list[dict[str, Any]], creates: list[str], deletes: list[MirrorDelete]
) -> None:
    got = mirror_actions(STATIC, api_pods, "n1", "nu")
    assert [p["metadata"]["name"] for p in got.create] == creates
    assert list(got.delete) == deletes
