"""The pure planning core: volumes, container mounts and the files of API-data volumes, as tables."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nodeagent.volumes import plan as vp
from nodeagent.volumes.errors import VolumeError

ROOT = "/data"


def pod(volumes: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1", **meta},
        "spec": {
            "volumes": volumes,
            "containers": [{"name": "app", "resources": {"limits": {"memory": "64Mi"}}}],
        },
    }


@pytest.mark.parametrize(
    ("volume", "kind", "path", "memory", "size", "readonly"),
    [
        pytest.param(
            {"name": "d", "emptyDir": {}},
            "emptyDir",
            "/data/pods/u1/volumes/kubernetes.io~empty-dir/d",
            False,
            None,
            False,
            id="emptyDir",
        ),
        pytest.param(
            {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            "emptyDir",
            "/data/pods/u1/volumes/kubernetes.io~empty-dir/m",
            True,
            1 << 20,
            False,
            id="memory",
        ),
        pytest.param(
            {"name": "h", "hostPath": {"path": "/srv"}}, "hostPath", "/srv", False, None, False, id="hostPath"
        ),
        pytest.param(
            {"name": "c", "configMap": {"name": "x"}},
            "configMap",
            "/data/pods/u1/volumes/kubernetes.io~configmap/c",
            False,
            None,
            True,
            id="configMap",
        ),
        pytest.param(
            {"name": "s", "secret": {"secretName": "x"}},
            "secret",
            "/data/pods/u1/volumes/kubernetes.io~secret/s",
            True,
            None,
            True,
            id="secret-tmpfs",
        ),
        pytest.param(
            {"name": "p", "projected": {"sources": []}},
            "projected",
            "/data/pods/u1/volumes/kubernetes.io~projected/p",
            True,
            None,
            True,
            id="projected",
        ),
        pytest.param(
            {"name": "w", "downwardAPI": {"items": []}},
            "downwardAPI",
            "/data/pods/u1/volumes/kubernetes.io~downward-api/w",
            False,
            None,
            True,
            id="downwardAPI",
        ),
        pytest.param(
            {"name": "v", "persistentVolumeClaim": {"claimName": "c", "readOnly": True}},
            "persistentVolumeClaim",
            "",
            False,
            None,
            True,
            id="claim",
        ),
    ],
)
def test_plan_volumes(
    volume: dict[str, Any], kind: str, path: str, memory: bool, size: int | None, readonly: bool
) -> None:
    (plan,) = vp.plan_volumes(pod([volume]), ROOT)
    assert (plan.kind, plan.path, plan.memory, plan.size_limit, plan.readonly) == (
        kind,
        path,
        memory,
        size,
        readonly,
    )


def test_unsupported_volume_type_says_which() -> None:
    with pytest.raises(VolumeError, match='volume "n" : volume type nfs is not supported'):
        vp.plan_volumes(pod([{"name": "n", "nfs": {"server": "x"}}]), ROOT)


VOLS = {
    p.name: p
    for p in vp.plan_volumes(pod([{"name": "d", "emptyDir": {}}, {"name": "c", "configMap": {}}]), ROOT)
}


@pytest.mark.parametrize(
    ("mount", "sub", "readonly", "propagation"),
    [
        pytest.param({"name": "d", "mountPath": "/x"}, "", False, "", id="plain"),
        pytest.param({"name": "d", "mountPath": "/x", "readOnly": True}, "", True, "", id="readOnly"),
        pytest.param({"name": "c", "mountPath": "/x"}, "", True, "", id="configMap-always-read-only"),
        pytest.param(
            {"name": "d", "mountPath": "/x", "subPath": "a/./b/"}, "a/b", False, "", id="subPath-normalised"
        ),
        pytest.param(
            {"name": "d", "mountPath": "/x", "subPathExpr": "logs/$(POD)"},
            "logs/web",
            False,
            "",
            id="subPathExpr",
        ),
        pytest.param(
            {"name": "d", "mountPath": "/x", "subPathExpr": "$(NOPE)"},
            "$(NOPE)",
            False,
            "",
            id="subPathExpr-unknown-stays",
        ),
        pytest.param(
            {"name": "d", "mountPath": "/x", "mountPropagation": "HostToContainer"},
            "",
            False,
            "HostToContainer",
            id="propagation",
        ),
    ],
)
def test_plan_mounts(mount: dict[str, Any], sub: str, readonly: bool, propagation: str) -> None:
    (m,) = vp.plan_mounts({"name": "app", "volumeMounts": [mount]}, {"POD": "web"}, VOLS)
    assert (m.container_path, m.sub_path, m.readonly, m.propagation, m.index) == (
        "/x",
        sub,
        readonly,
        propagation,
        0,
    )


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        pytest.param(
            {"name": "zz", "mountPath": "/x"},
            'cannot find volume "zz" to mount into container "app"',
            id="unknown-volume",
        ),
        pytest.param(
            {"name": "d", "mountPath": "/x", "subPath": "/etc"}, "must not be an absolute path", id="abs"
        ),
        pytest.param(
            {"name": "d", "mountPath": "/x", "subPath": "a/../../b"}, "must not contain '..'", id="dotdot"
        ),
        pytest.param(
            {"name": "d", "mountPath": "/x", "subPathExpr": "$(UP)/x"},
            "must not contain '..'",
            id="expr-dotdot",
        ),
    ],
)
def test_plan_mounts_refused(mount: dict[str, Any], message: str) -> None:
    with pytest.raises(VolumeError, match=message) as err:
        vp.plan_mounts({"name": "app", "volumeMounts": [mount]}, {"UP": ".."}, VOLS)
    assert err.value.reason == "Failed"


CM = {"data": {"a": "1", "b": "2"}, "binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()}}
SECRET = {"data": {"user": base64.b64encode(b"admin").decode()}}
F = vp.FileProjection


@pytest.mark.parametrize(
    ("kind", "source", "obj", "want"),
    [
        pytest.param(
            "configMap",
            {"name": "x"},
            CM,
            {"a": F(b"1", 0o644), "b": F(b"2", 0o644), "bin": F(b"\x00\x01", 0o644)},
            id="all-keys",
        ),
        pytest.param(
            "configMap",
            {"name": "x", "items": [{"key": "a", "path": "sub/a.txt", "mode": 0o400}]},
            CM,
            {"sub/a.txt": F(b"1", 0o400)},
            id="items-path-mode",
        ),
        pytest.param("secret", {"name": "x"}, SECRET, {"user": F(b"admin", 0o644)}, id="secret-decoded"),
        pytest.param("secret", {"name": "x", "optional": True}, None, {}, id="optional-missing"),
        pytest.param(
            "configMap",
            {"name": "x", "optional": True, "items": [{"key": "nope", "path": "n"}]},
            CM,
            {},
            id="optional-missing-key",
        ),
    ],
)
def test_object_payload(kind: str, source: dict[str, Any], obj: Any, want: dict[str, Any]) -> None:
    assert vp.object_payload(kind, source, obj, 0o644) == want


@pytest.mark.parametrize(
    ("kind", "source", "obj", "message"),
    [
        pytest.param("configMap", {"name": "y"}, None, 'configmap "y" not found', id="cm-missing"),
        pytest.param("secret", {"name": "y"}, None, 'secret "y" not found', id="secret-missing"),
        pytest.param(
            "configMap",
            {"name": "y", "items": [{"key": "k", "path": "k"}]},
            CM,
            "configmap references non-existent config key: k",
            id="cm-key",
        ),
        pytest.param(
            "secret",
            {"name": "y", "items": [{"key": "k", "path": "k"}]},
            SECRET,
            "secret references non-existent secret key: k",
            id="secret-key",
        ),
    ],
)
def test_object_payload_errors(kind: str, source: dict[str, Any], obj: Any, message: str) -> None:
    with pytest.raises(VolumeError) as err:
        vp.object_payload(kind, source, obj, 0o644)
    assert err.value.message == message


def test_downward_payload() -> None:
    p = pod([], labels={"b": "2", "a": 'say "hi"'}, annotations={})
    items = [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}, "mode": 0o600},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {
            "path": "mem",
            "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"},
        },
        {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"}},
    ]
    got = vp.downward_payload(p, items, 0o644, {"cpu": "2"})
    assert got == {
        "name": F(b"web", 0o644),
        "uid": F(b"u1", 0o600),
        "labels": F(b'a="say \\"hi\\""\nb="2"', 0o644),
        "annotations": F(b"", 0o644),
        "mem": F(b"64", 0o644),
        "cpu": F(b"2", 0o644),
    }


def test_downward_resource_needs_container_name() -> None:
    with pytest.raises(VolumeError, match="containerName is required"):
        vp.downward_payload(
            pod([]), [{"path": "m", "resourceFieldRef": {"resource": "limits.memory"}}], 0o644, {}
        )


def test_projected_payload_in_source_order() -> None:
    source = {
        "defaultMode": 0o440,
        "sources": [
            {"configMap": {"name": "x", "items": [{"key": "a", "path": "same"}]}},
            {"secret": {"name": "s"}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            {"serviceAccountToken": {"path": "token", "audience": "vault"}},
            {"configMap": {"name": "x", "items": [{"key": "b", "path": "same", "mode": 0o400}]}},
        ],
    }
    objects = {("configMap", "x"): CM, ("secret", "s"): SECRET}
    got = vp.projected_payload(
        pod([]), source, lambda k, n: objects.get((k, n)), lambda i, s: f"tok{i}-{s['audience']}", {}
    )
    assert got == {
        "same": F(b"2", 0o400),
        "user": F(b"admin", 0o440),
        "ns": F(b"ns", 0o440),
        "token": F(b"tok3-vault", 0o440),
    }


@pytest.mark.parametrize(
    ("source", "seconds", "audiences"),
    [
        pytest.param({}, 3600, None, id="defaults"),
        pytest.param({"expirationSeconds": 60, "audience": "a"}, 600, ["a"], id="minimum-600"),
        pytest.param({"expirationSeconds": 7200}, 7200, None, id="given"),
    ],
)
def test_token_request(source: dict[str, Any], seconds: int, audiences: list[str] | None) -> None:
    spec = vp.token_request(pod([]), source)["spec"]
    assert spec["expirationSeconds"] == seconds and spec.get("audiences") == audiences
    assert spec["boundObjectRef"] == {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u1"}
