"""Issue 16's admission acceptance with the real kubectl against `raykube up`: PodSecurity refusing a
privileged pod in a restricted namespace with kube's message and warning in warn mode, a quota
refusing the pod over it while the quota controller keeps ``status.used``, LimitRange defaults, an
unknown PriorityClass refused, and a pod's own ServiceAccount token used from inside the pod by the
official Python client's in-cluster configuration: 403 until a RoleBinding grants ``list pods``,
then the list.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.auth_support import user
from tests.integration.conftest import Kubectl
from tests.integration.support import wait_until

pytestmark = pytest.mark.integration

PRIVILEGED_POD = """
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  containers:
  - name: priv
    image: busybox
    command: [sleep, "3600"]
    securityContext: {privileged: true}
"""


def test_restricted_namespace_refuses_a_privileged_pod(kubectl: Kubectl, namespace: str) -> None:
    kubectl.out(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", namespaced=False
    )
    err = kubectl.fails("apply", "-f", "-", input=PRIVILEGED_POD)
    assert (
        'pods "priv" is forbidden: violates PodSecurity "restricted:latest": '
        'privileged (container "priv" must not set securityContext.privileged=true), '
        "allowPrivilegeEscalation != false "
        '(container "priv" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "priv" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "priv" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "priv" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")'
    ) in err, err
    assert kubectl.run("get", "pod", "priv", check=False).returncode != 0


def test_warn_mode_prints_the_warning_and_admits(kubectl: Kubectl, namespace: str) -> None:
    kubectl.out("label", "namespace", namespace, "pod-security.kubernetes.io/warn=baseline", namespaced=False)
    proc = kubectl.run("apply", "-f", "-", input=PRIVILEGED_POD)
    assert (
        'Warning: would violate PodSecurity "baseline:latest": privileged '
        '(container "priv" must not set securityContext.privileged=true)'
    ) in proc.stderr, proc.stderr
    assert kubectl.json("get", "pod", "priv")["metadata"]["name"] == "priv"
    # Enforcing now warns about the pod that is already there (kube's namespace label check).
    label = kubectl.run(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=baseline", namespaced=False
    )
    assert (
        f'Warning: existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
        '"baseline:latest"'
    ) in label.stderr, label.stderr
    assert "Warning: priv: privileged" in label.stderr, label.stderr


def _status(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return dict(kubectl.json("get", "resourcequota", name).get("status") or {})


def test_quota_refuses_the_pod_over_it_and_the_controller_keeps_used(kubectl: Kubectl) -> None:
    kubectl.out("create", "quota", "q", "--hard=pods=1,count/configmaps=20")
    wait_until(lambda: _status(kubectl, "q").get("hard"), "the quota controller filling status.hard", 60)
    kubectl.out("run", "one", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
    err = kubectl.fails("run", "two", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
    assert (
        'pods "two" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1' in err
    ), err
    assert _status(kubectl, "q")["used"]["pods"] == "1"
    kubectl.out("delete", "pod", "one", "--grace-period=0", "--force")
    wait_until(
        lambda: _status(kubectl, "q")["used"].get("pods") == "0",
        "the quota controller giving the pod back",
        60,
    )
    kubectl.out("run", "two", "--image=busybox", "--restart=Never", "--", "sleep", "3600")


def test_quota_on_cpu_needs_every_container_to_say_it(kubectl: Kubectl) -> None:
    kubectl.out("create", "quota", "compute", "--hard=limits.cpu=1")
    wait_until(lambda: _status(kubectl, "compute").get("hard"), "status.hard", 60)
    err = kubectl.fails("run", "web", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
    assert 'pods "web" is forbidden: failed quota: compute: must specify limits.cpu for: web' in err, err


LIMIT_RANGE = """
apiVersion: v1
kind: LimitRange
metadata: {name: defaults}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 250m, memory: 128Mi}
    max: {cpu: "1"}
"""


def test_limit_range_defaults_appear_and_max_refuses(kubectl: Kubectl) -> None:
    kubectl.apply(LIMIT_RANGE)
    kubectl.out("run", "web", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
    pod = kubectl.json("get", "pod", "web")
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m", "memory": "256Mi"},
        "requests": {"cpu": "250m", "memory": "128Mi"},
    }
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for container web"
    )
    big = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "big"},
        "spec": {"containers": [{"name": "big", "image": "busybox", "resources": {"limits": {"cpu": "2"}}}]},
    }
    err = kubectl.fails("apply", "-f", "-", input=json.dumps(big))
    assert 'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2' in err, err


def test_unknown_priority_class_is_refused(kubectl: Kubectl) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "priorityClassName": "nope",
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}],
        },
    }
    err = kubectl.fails("apply", "-f", "-", input=json.dumps(pod))
    assert 'pods "p" is forbidden: no PriorityClass with name nope was found' in err, err
    pod["metadata"]["name"] = "critical"
    pod["spec"]["priorityClassName"] = "system-cluster-critical"
    kubectl.apply(json.dumps(pod))
    spec = kubectl.json("get", "pod", "critical")["spec"]
    assert (spec["priority"], spec["preemptionPolicy"]) == (2000000000, "PreemptLowerPriority")


# The pod's program: the official client, in-cluster, lists pods every half second and prints the
# HTTP status of each try (403 until bound), then the names once the list is allowed.
IN_POD = textwrap.dedent(
    """
    import sys, time
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    config.load_incluster_config()
    namespace = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
    api = client.CoreV1Api()
    for _ in range(600):
        try:
            pods = api.list_namespaced_pod(namespace)
        except ApiException as err:
            print("status", err.status, err.reason, flush=True)
            time.sleep(0.5)
            continue
        print("listed", ",".join(sorted(p.metadata.name for p in pods.items)), flush=True)
        sys.exit(0)
    sys.exit(1)
    """
)


def test_a_pods_service_account_lists_pods_only_once_bound(kubectl: Kubectl, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lister"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "lister", "image": "busybox", "command": [sys.executable, "-c", IN_POD]}],
        },
    }
    kubectl.apply(json.dumps(pod))
    spec = kubectl.json("get", "pod", "lister")["spec"]
    assert spec["serviceAccountName"] == "default"
    token_volume = next(v for v in spec["volumes"] if v["name"].startswith("kube-api-access-"))
    assert [sorted(s) for s in token_volume["projected"]["sources"]] == [
        ["serviceAccountToken"],
        ["configMap"],
        ["downwardAPI"],
    ]

    def logs() -> str:
        return kubectl.run("logs", "lister", check=False).stdout

    forbidden = wait_until(lambda: "status 403" in logs() and logs(), "a 403 from inside the pod", 120)
    assert "status 403 Forbidden" in forbidden, forbidden
    kubectl.out("create", "role", "pod-lister", "--verb=list", "--resource=pods")
    kubectl.out(
        "create", "rolebinding", "lister", "--role=pod-lister", f"--serviceaccount={namespace}:default"
    )
    listed = wait_until(lambda: "listed" in logs() and logs(), "the list from inside the pod", 60)
    assert listed.strip().splitlines()[-1] == "listed lister", listed
    kubectl_phase = wait_until(
        lambda: kubectl.json("get", "pod", "lister")["status"].get("phase") == "Succeeded" or None,
        "the pod to finish",
        60,
    )
    assert kubectl_phase


def test_node_restriction_with_a_node_identity(kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    """A node's identity (``system:node:ghost`` in ``system:nodes``, as a node agent's certificate) is
    let through by the Node authorizer to create pods and patch Nodes, and NodeRestriction refuses
    what is not its own, in kube's words."""
    node = user(kubectl.cluster, tmp_path, "system:node:ghost", ("system:nodes",)).kubectl(namespace)
    err = node.fails("run", "p", "--image=busybox", "--restart=Never", "--", "true")
    assert (
        'pods "p" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, '
        'node "ghost" can only create mirror pods'
    ) in err, err
    real = kubectl.json("get", "nodes", namespaced=False)["items"][0]["metadata"]["name"]
    err = node.fails("label", "node", real, "example.com/x=y", namespaced=False)
    assert f'nodes "{real}" is forbidden: node "ghost" is not allowed to modify node "{real}"' in err, err
