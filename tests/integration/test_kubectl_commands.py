"""Real kubectl 1.33 against a real `raykube up`: get, watch, create, label, annotate, patch, edit,
scale, explain and the error paths, each checked against what Kubernetes prints or stores.

Every test runs in its own namespace (the ``kubectl`` fixture), so tests are independent.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Kubectl


def pod(name: str, labels: dict[str, str], image: str = "nginx:1.25") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "nginx", "image": image}]},
    }


def workload(kind: str, name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def apply_objects(k: Kubectl, *objs: dict[str, Any]) -> None:
    k.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))


def names(k: Kubectl, *args: str) -> list[str]:
    return sorted(k.out("get", *args, "-o", "name").split())


# ---------------------------------------------------------------------- get


def test_get_output_formats(kubectl: Kubectl) -> None:
    apply_objects(kubectl, pod("web", {"app": "web", "tier": "fe"}))
    wide = kubectl.out("get", "pods", "-o", "wide").splitlines()
    assert wide[0].split() == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"
    ]  # fmt: skip
    assert kubectl.out("get", "pod", "web", "-o", "name").strip() == "pod/web"
    assert "image: nginx:1.25" in kubectl.out("get", "pod", "web", "-o", "yaml")
    assert kubectl.json("get", "pod", "web")["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    jp = kubectl.out("get", "pod", "web", "-o", "jsonpath={.spec.containers[0].image}")
    assert jp == "nginx:1.25"
    shown = kubectl.out("get", "pods", "--show-labels").splitlines()
    assert shown[0].split()[-1] == "LABELS"
    assert shown[1].split()[-1] == "app=web,tier=fe"


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("app=web", ["pod/a", "pod/b"], id="equality"),
        pytest.param("app!=web", ["pod/c"], id="inequality"),
        pytest.param("tier in (fe,be)", ["pod/a", "pod/c"], id="set-in"),
        pytest.param("tier notin (fe)", ["pod/b", "pod/c"], id="set-notin"),
        pytest.param("tier", ["pod/a", "pod/c"], id="exists"),
        pytest.param("!tier", ["pod/b"], id="not-exists"),
        pytest.param("app=web,tier=fe", ["pod/a"], id="and"),
    ],
)
def test_get_label_selectors(kubectl: Kubectl, selector: str, expected: list[str]) -> None:
    apply_objects(
        kubectl,
        pod("a", {"app": "web", "tier": "fe"}),
        pod("b", {"app": "web"}),
        pod("c", {"app": "db", "tier": "be"}),
    )
    assert names(kubectl, "pods", "-l", selector) == expected


def test_get_all_namespaces(kubectl: Kubectl) -> None:
    apply_objects(kubectl, pod("web", {"app": "web"}))
    lines = kubectl.out("get", "pods", "-A", namespaced=False).splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [kubectl.namespace, "web"] in [line.split()[:2] for line in lines[1:]]


def test_get_watch_sees_added_then_modified(kubectl: Kubectl) -> None:
    apply_objects(kubectl, pod("web", {"app": "web"}))
    cmd = [
        str(kubectl.binary), "--kubeconfig", str(kubectl.cluster.kubeconfig), "-n", str(kubectl.namespace),
        "get", "pod", "web", "-w", "--output-watch-events", "-o", "jsonpath={.metadata.labels.v}{\"\\n\"}",
    ]  # fmt: skip
    del cmd[-2:]  # --output-watch-events prints the event type in the table output
    watcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # let the list and the watch request get to the server
        kubectl.run("label", "pod", "web", "v=changed")
        deadline = time.monotonic() + 20
        lines: list[str] = []
        assert watcher.stdout is not None
        while time.monotonic() < deadline and not any(line.startswith("MODIFIED") for line in lines):
            line = watcher.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        watcher.kill()
        watcher.communicate(timeout=10)
    events = [line.split()[0] for line in lines if line.split() and line.split()[0] != "EVENT"]
    assert events[:2] == ["ADDED", "MODIFIED"], lines


# ---------------------------------------------------------------------- describe, delete


def test_describe_deployment(kubectl: Kubectl) -> None:
    apply_objects(kubectl, workload("Deployment", "web", 2))
    out = kubectl.out("describe", "deployment", "web")
    assert "Name:" in out and "web" in out
    assert "Selector:" in out and "app=web" in out
    assert "2 desired" in out
    assert "nginx:1.25" in out


def test_delete_all(kubectl: Kubectl) -> None:
    apply_objects(kubectl, pod("a", {"x": "1"}), pod("b", {"x": "1"}))
    out = kubectl.out("delete", "pods", "--all", "--wait=true", timeout=90)
    assert sorted(out.split("\n")[:2]) == ['pod "a" deleted', 'pod "b" deleted']
    assert kubectl.out("get", "pods", "-o", "name") == ""


# ---------------------------------------------------------------------- create


def test_create_configmap_from_files_and_dir(kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("first\n")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "x.conf").write_text("x=1")
    (d / "y.conf").write_text("y=2")
    kubectl.run("create", "configmap", "f", f"--from-file={tmp_path / 'one.txt'}")
    kubectl.run("create", "configmap", "k", f"--from-file=renamed={tmp_path / 'one.txt'}")
    kubectl.run("create", "configmap", "d", f"--from-file={d}")
    assert kubectl.json("get", "cm", "f")["data"] == {"one.txt": "first\n"}
    assert kubectl.json("get", "cm", "k")["data"] == {"renamed": "first\n"}
    assert kubectl.json("get", "cm", "d")["data"] == {"x.conf": "x=1", "y.conf": "y=2"}


def test_create_secret_generic_is_base64(kubectl: Kubectl) -> None:
    kubectl.run("create", "secret", "generic", "s", "--from-literal=user=admin", "--from-literal=pw=s3cr3t")
    secret = kubectl.json("get", "secret", "s")
    assert secret["type"] == "Opaque"
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "user": "admin",
        "pw": "s3cr3t",
    }


def test_create_deployment(kubectl: Kubectl) -> None:
    proc = kubectl.run("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2")
    assert proc.returncode == 0, proc.stderr
    deploy = kubectl.json("get", "deployment", "web")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


def test_create_namespace_and_duplicate(kubectl: Kubectl) -> None:
    ns = f"{kubectl.namespace}-extra"
    try:
        assert kubectl.out("create", "namespace", ns, namespaced=False).strip() == f"namespace/{ns} created"
        assert kubectl.json("get", "namespace", ns, namespaced=False)["status"]["phase"] == "Active"
    finally:
        kubectl.run("delete", "namespace", ns, "--wait=false", namespaced=False, check=False)


# ---------------------------------------------------------------------- label, annotate, patch, edit


def test_label_overwrite_and_remove(kubectl: Kubectl) -> None:
    apply_objects(kubectl, pod("web", {"app": "web"}))
    kubectl.run("label", "pod", "web", "env=dev")
    assert "already has a value" in kubectl.fails("label", "pod", "web", "env=prod")
    kubectl.run("label", "pod", "web", "env=prod", "--overwrite")
    assert kubectl.json("get", "pod", "web")["metadata"]["labels"] == {"app": "web", "env": "prod"}
    kubectl.run("label", "pod", "web", "env-")
    assert kubectl.json("get", "pod", "web")["metadata"]["labels"] == {"app": "web"}


def test_annotate(kubectl: Kubectl) -> None:
    kubectl.run("create", "-f", "-", input=json.dumps(pod("web", {"app": "web"})))  # no last-applied
    kubectl.run("annotate", "pod", "web", "note=hello world")
    assert kubectl.json("get", "pod", "web")["metadata"]["annotations"]["note"] == "hello world"
    kubectl.run("annotate", "pod", "web", "note-")
    # Like Kubernetes (omitempty), removing the last annotation leaves no `annotations: {}` behind.
    assert "annotations" not in kubectl.json("get", "pod", "web")["metadata"]
    kubectl.run("label", "pod", "web", "app-")
    assert "labels" not in kubectl.json("get", "pod", "web")["metadata"]


@pytest.mark.parametrize(
    ("ptype", "patch", "path", "expected"),
    [
        pytest.param(
            "merge", {"metadata": {"labels": {"tier": "fe", "app": None}}}, ("metadata", "labels"),
            {"tier": "fe"}, id="merge-sets-and-deletes",
        ),
        pytest.param(
            "json", [{"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.27"}],
            ("spec", "containers", 0, "image"), "nginx:1.27", id="json-replace",
        ),
        pytest.param(
            "strategic", {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.28"}]}},
            ("spec", "containers"), [{"name": "nginx", "image": "nginx:1.28"}], id="strategic-merges-by-name",
        ),
    ],
)  # fmt: skip
def test_patch_types(kubectl: Kubectl, ptype: str, patch: Any, path: tuple[Any, ...], expected: Any) -> None:
    apply_objects(kubectl, pod("web", {"app": "web"}))
    kubectl.run("patch", "pod", "web", "--type", ptype, "-p", json.dumps(patch))
    got: Any = kubectl.json("get", "pod", "web")
    for step in path:
        got = got[step]
    if path[-1] == "containers":
        got = [{"name": c["name"], "image": c["image"]} for c in got]
    assert got == expected


def test_strategic_patch_adds_and_deletes_by_merge_key(kubectl: Kubectl) -> None:
    apply_objects(kubectl, workload("Deployment", "web"))
    add = {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}}}
    kubectl.run("patch", "deployment", "web", "-p", json.dumps(add))
    containers = kubectl.json("get", "deployment", "web")["spec"]["template"]["spec"]["containers"]
    # Order follows Kubernetes' mergeSortedSlice (patch/strategic.py); only membership is checked here.
    assert sorted((c["name"], c["image"]) for c in containers) == [
        ("nginx", "nginx:1.25"),
        ("side", "busybox"),
    ]
    delete = {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}
    kubectl.run("patch", "deployment", "web", "--type", "strategic", "-p", json.dumps(delete))
    containers = kubectl.json("get", "deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["nginx"]


EDITOR = (
    f'{sys.executable} -c "import sys; p = sys.argv[1]; s = open(p).read(); '
    "open(p, 'w').write(s.replace('nginx:1.25', 'nginx:1.29'))\""
)


def test_edit_with_scripted_editor(kubectl: Kubectl) -> None:
    apply_objects(kubectl, pod("web", {"app": "web"}))
    out = kubectl.out("edit", "pod", "web", env={"KUBE_EDITOR": EDITOR, "EDITOR": EDITOR})
    assert out.strip() == "pod/web edited"
    assert kubectl.json("get", "pod", "web")["spec"]["containers"][0]["image"] == "nginx:1.29"


# ---------------------------------------------------------------------- apply


def test_apply_server_side_conflict_and_force(kubectl: Kubectl) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "one"}}
    out = kubectl.apply(json.dumps(cm), "--server-side")
    assert out.strip() == "configmap/cfg serverside-applied"
    cm["data"]["k"] = "two"
    err = kubectl.fails("apply", "-f", "-", "--server-side", "--field-manager=other", input=json.dumps(cm))
    assert "conflict" in err.lower() and ".data.k" in err
    assert kubectl.json("get", "cm", "cfg")["data"] == {"k": "one"}
    out = kubectl.apply(json.dumps(cm), "--server-side", "--field-manager=other", "--force-conflicts")
    assert out.strip() == "configmap/cfg serverside-applied"
    assert kubectl.json("get", "cm", "cfg")["data"] == {"k": "two"}


def test_server_side_apply_takes_over_a_client_side_applied_pod(kubectl: Kubectl) -> None:
    apply_objects(kubectl, pod("web", {"app": "web"}))
    changed = json.dumps(pod("web", {"app": "web"}, image="nginx:1.26"))
    proc = kubectl.run("apply", "-f", "-", "--server-side", "--force-conflicts", input=changed)
    assert proc.stdout.strip() == "pod/web serverside-applied"
    # kubectl migrates the client-side-apply manager to server-side apply; fields that admission
    # added (service account, tolerations) are nobody's, so the apply must not try to remove them.
    assert "failed to re-apply" not in proc.stderr, proc.stderr
    live = kubectl.json("get", "pod", "web", "--show-managed-fields")
    assert live["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert live["spec"]["serviceAccountName"] == "default"
    managers = {(m["manager"], m["operation"]) for m in live["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers


def test_delete_namespace_waits_until_gone(kubectl: Kubectl) -> None:
    ns = f"{kubectl.namespace}-gone"
    kubectl.run("create", "namespace", ns, namespaced=False)
    kubectl.run("create", "configmap", "c", "--from-literal=a=1", "-n", ns, namespaced=False)
    out = kubectl.out("delete", "namespace", ns, "--wait=true", "--timeout=60s", namespaced=False, timeout=90)
    assert out.strip() == f'namespace "{ns}" deleted'
    assert "NotFound" in kubectl.fails("get", "namespace", ns, namespaced=False)


# ---------------------------------------------------------------------- scale


@pytest.mark.parametrize(
    ("kind", "resource"),
    [
        pytest.param("Deployment", "deployment", id="deployment"),
        pytest.param("ReplicaSet", "replicaset", id="replicaset"),
        pytest.param("StatefulSet", "statefulset", id="statefulset"),
    ],
)
def test_scale(kubectl: Kubectl, kind: str, resource: str) -> None:
    apply_objects(kubectl, workload(kind, "web", 1))
    assert kubectl.out("scale", resource, "web", "--replicas=3").strip() == f"{resource}.apps/web scaled"
    assert kubectl.json("get", resource, "web")["spec"]["replicas"] == 3
    kubectl.run("scale", resource, "web", "--replicas=2", "--current-replicas=3")
    assert kubectl.json("get", resource, "web")["spec"]["replicas"] == 2
    err = kubectl.fails("scale", resource, "web", "--replicas=5", "--current-replicas=7")
    assert "Expected replicas to be 7, was 2" in err
    assert kubectl.json("get", resource, "web")["spec"]["replicas"] == 2


# ---------------------------------------------------------------------- discovery and docs


def test_explain_prints_field_description(kubectl: Kubectl) -> None:
    out = kubectl.out("explain", "pod.spec.containers.image", namespaced=False)
    assert "FIELD: image" in out or "FIELD:    image" in out
    assert "Container image name" in out


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        pytest.param(
            ("create", "-f", "-"),
            json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
                        "spec": {"containers": [{"name": "c"}]}}),
            'The Pod "bad" is invalid: spec.containers[0].image: Required value',
            id="invalid-pod",
        ),
        pytest.param(
            ("get", "pod", "missing"), None, 'Error from server (NotFound): pods "missing" not found',
            id="not-found",
        ),
    ],
)  # fmt: skip
def test_error_messages(kubectl: Kubectl, args: tuple[str, ...], stdin: str | None, expected: str) -> None:
    assert expected in kubectl.fails(*args, input=stdin)


def test_create_existing_is_already_exists(kubectl: Kubectl) -> None:
    manifest = json.dumps(pod("dup", {"a": "b"}))
    kubectl.run("create", "-f", "-", input=manifest)
    err = kubectl.fails("create", "-f", "-", input=manifest)
    assert 'Error from server (AlreadyExists): error when creating "STDIN": pods "dup" already exists' in err


def test_create_in_missing_namespace(kubectl: Kubectl) -> None:
    err = kubectl.fails("create", "-f", "-", "-n", "no-such-ns", input=json.dumps(pod("x", {})))
    assert (
        'Error from server (NotFound): error when creating "STDIN": namespaces "no-such-ns" not found' in err
    )
