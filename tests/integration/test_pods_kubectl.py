"""Pods really run: issue 5's "what it must show" through real kubectl against `raykube up`.

`raykube up` starts a node agent and the `process` CRI runtime on the Ray node, so the session's cluster
has one real node. The process runtime runs commands on the host's filesystem: `image: busybox` with
`command: [sh, -c, ...]` runs the host's sh, and busybox-static is at /bin/busybox.

Every wait polls kubectl until the outcome shows (generous timeouts, never a fixed sleep standing in
for an event). Pods that several tests read (the seed pods, a two-container pod) are created once per
module in a namespace of their own; tests that change a pod's life create their own in the per-test
namespace.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.integration.conftest import Kubectl, RaykubeCluster

T = TypeVar("T")

WAIT = 120.0
EXEC_VERSIONS = [pytest.param(v, id=f"kubectl-{v}") for v in ("1.30", "1.32", "1.33")]
LOOP_DOTS = "while true; do echo .; sleep 1; done"
TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \.$")


# ---------------------------------------------------------------------- helpers


def wait_until(probe: Callable[[], T | None], what: str, timeout: float = WAIT, every: float = 0.5) -> T:
    """Poll ``probe`` until it returns something other than None/False; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last is not None and last is not False:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(every)


def container(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


def pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"test": name}},
        "spec": {"containers": list(containers), **spec},
    }


def apply(k: Kubectl, *objects: dict[str, Any]) -> None:
    k.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def get_pod(k: Kubectl, name: str) -> dict[str, Any]:
    return dict(k.json("get", "pod", name))


def phase(k: Kubectl, name: str) -> str:
    return str(get_pod(k, name).get("status", {}).get("phase", ""))


def wait_phase(k: Kubectl, name: str, want: str, timeout: float = WAIT) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        p = get_pod(k, name)
        return p if p.get("status", {}).get("phase") == want else None

    return wait_until(probe, f"pod {name} phase {want}", timeout)


def condition(p: dict[str, Any], kind: str) -> str | None:
    for c in p.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return str(c["status"])
    return None


def container_status(p: dict[str, Any], name: str) -> dict[str, Any]:
    for s in p.get("status", {}).get("containerStatuses", []):
        if s["name"] == name:
            return dict(s)
    return {}


def wait_status(
    k: Kubectl, name: str, test: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        p = get_pod(k, name)
        return p if test(p) else None

    return wait_until(probe, f"pod {name}: {what}", timeout)


def table_row(k: Kubectl, name: str, *args: str) -> dict[str, str]:
    """The `kubectl get pod NAME` row as {column: value} (columns split on 2+ spaces)."""
    lines = k.out("get", "pod", name, *args).splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    return dict(zip(header, re.split(r"\s{2,}", lines[1].strip()), strict=False))


def host_pids(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (the process runtime runs pods on the host)."""
    proc = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    return sorted(int(p) for p in proc.stdout.split())


def find_real_node(admin: Kubectl) -> dict[str, Any]:
    """The node an agent registered (hollow nodes of other tests have no kubelet endpoint)."""

    def probe() -> dict[str, Any] | None:
        for node in admin.json("get", "nodes", namespaced=False)["items"]:
            status = node.get("status", {})
            port = status.get("daemonEndpoints", {}).get("kubeletEndpoint", {}).get("Port", 0)
            if port and condition(node, "Ready") == "True":
                return dict(node)
        return None

    return wait_until(probe, "a Ready node with a node agent")


def read_lines(cmd: list[str], count: int, timeout: float = 60.0) -> list[str]:
    """Start ``cmd``, read ``count`` stdout lines, then kill it (a watchdog kills it on timeout)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while len(lines) < count:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        return lines
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait(timeout=30)


def kubectl_cmd(k: Kubectl, *args: str) -> list[str]:
    return [str(k.binary), "--kubeconfig", str(k.cluster.kubeconfig), "-n", str(k.namespace), *args]


# ---------------------------------------------------------------------- shared pods


@pytest.fixture(scope="module")
def real_node(raykube_cluster: RaykubeCluster) -> dict[str, Any]:
    return find_real_node(Kubectl(raykube_cluster, "1.33", None))


@pytest.fixture(scope="module")
def seeded(raykube_cluster: RaykubeCluster, real_node: dict[str, Any]) -> Iterator[Kubectl]:
    """A namespace with the seed document's three pods and a two-container pod, all Running."""
    name = f"seed-{secrets.token_hex(4)}"
    admin = Kubectl(raykube_cluster, "1.33", None)
    admin.run("create", "namespace", name)
    k = Kubectl(raykube_cluster, "1.33", name)
    seed = [
        # the seed document's pods, as written there (the loop echoes every second instead of five)
        pod("dots", container("busybox", LOOP_DOTS, ports=[{"containerPort": 80}])),
        pod(
            "sleeper",
            {
                "name": "busybox",
                "image": "busybox",
                "ports": [{"containerPort": 80}],
                "command": ["/bin/sh", "-ec", "sleep 1000"],
            },
        ),
        pod(
            "ubuntu", {"name": "ubuntu", "image": "ubuntu:latest", "command": ["sleep"], "args": ["infinity"]}
        ),
        pod(
            "duo",
            container("a", "echo from-a; sleep 1000", env=[{"name": "WHO", "value": "first"}]),
            container("b", "echo from-b; sleep 1000", env=[{"name": "WHO", "value": "second"}]),
        ),
    ]
    apply(k, *seed)
    for p in seed:
        wait_phase(k, p["metadata"]["name"], "Running")
    yield k
    admin.run("delete", "namespace", name, "--wait=false", check=False)


# ---------------------------------------------------------------------- 1. seed pods, get -o wide, logs


def test_seed_pods_run_on_the_real_node(seeded: Kubectl, real_node: dict[str, Any]) -> None:
    node = real_node["metadata"]["name"]
    for name in ("dots", "sleeper", "ubuntu"):
        p = get_pod(seeded, name)
        assert p["spec"]["nodeName"] == node
        assert p["status"]["phase"] == "Running"
        assert condition(p, "Ready") == "True"
        row = table_row(seeded, name, "-o", "wide")
        assert row["READY"] == "1/1" and row["STATUS"] == "Running", row
        assert row["NODE"] == node, row
        assert row["IP"] == p["status"]["podIP"] and row["IP"] not in ("", "<none>"), row


def test_logs_show_the_dots(seeded: Kubectl) -> None:
    wait_until(lambda: seeded.out("logs", "dots").count(".\n") >= 3, "three dots")
    assert set(seeded.out("logs", "dots").splitlines()) == {"."}
    assert seeded.out("logs", "dots", "--tail=2").splitlines() == [".", "."]
    stamped = seeded.out("logs", "dots", "--timestamps", "--tail=3").splitlines()
    assert len(stamped) == 3 and all(TIMESTAMPED.match(line) for line in stamped), stamped


def test_logs_since_and_since_time(seeded: Kubectl) -> None:
    wait_until(lambda: seeded.out("logs", "dots").count(".\n") >= 6, "six dots")
    assert set(seeded.out("logs", "dots", "--since=1h").splitlines()) == {"."}
    stamped = seeded.out("logs", "dots", "--timestamps").splitlines()
    # sinceTime has whole-second precision: every line stamped at or after that second comes back
    cut = stamped[3].split()[0][:19] + "Z"
    expected = [line for line in stamped if line.split()[0][:19] + "Z" >= cut]
    after = seeded.out("logs", "dots", "--timestamps", f"--since-time={cut}").splitlines()
    assert after[: len(expected)] == expected
    assert all(line.split()[0][:19] + "Z" >= cut for line in after)
    assert stamped[0] not in after  # three seconds older than the cut


def test_logs_follow_streams_new_lines(seeded: Kubectl) -> None:
    # --tail=1 prints one old line, so the other four can only come from following the file
    lines = read_lines(kubectl_cmd(seeded, "logs", "-f", "--tail=1", "--timestamps", "dots"), 5)
    assert len(lines) == 5 and all(TIMESTAMPED.match(line) for line in lines), lines
    stamps = [line.split()[0] for line in lines]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5


def test_logs_choose_a_container(seeded: Kubectl) -> None:
    assert seeded.out("logs", "duo", "-c", "a").splitlines() == ["from-a"]
    assert seeded.out("logs", "duo", "-c", "b").splitlines() == ["from-b"]
    assert "container nope is not valid for pod duo" in seeded.fails("logs", "duo", "-c", "nope")


@pytest.mark.parametrize("version", EXEC_VERSIONS)
def test_logs_with_each_kubectl(seeded: Kubectl, version: str) -> None:
    k = seeded.with_version(version)
    assert k.out("logs", "dots", "--tail=2").splitlines() == [".", "."]


def test_logs_previous_after_a_restart(kubectl: Kubectl, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    # the first attempt exits 1; the second keeps running, so the previous log is attempt 1's
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        'echo "attempt-$n"; [ "$n" -ge 2 ] && exec sleep 1000; exit 1'
    )
    apply(kubectl, pod("again", container("app", script)))
    wait_status(
        kubectl,
        "again",
        lambda p: (
            container_status(p, "app").get("restartCount") == 1
            and "running" in container_status(p, "app")["state"]
        ),
        "restarted once and running",
    )
    assert kubectl.out("logs", "again").splitlines() == ["attempt-2"]
    assert kubectl.out("logs", "again", "--previous").splitlines() == ["attempt-1"]
    last = container_status(get_pod(kubectl, "again"), "app")["lastState"]["terminated"]
    assert last["exitCode"] == 1 and last["reason"] == "Error"


# ---------------------------------------------------------------------- 2. exec


@pytest.mark.parametrize("version", EXEC_VERSIONS)
def test_exec_output_exit_codes_and_stdin(seeded: Kubectl, version: str) -> None:
    k = seeded.with_version(version)
    ok = k.run("exec", "sleeper", "--", "sh", "-c", "echo hi; echo oops >&2")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "hi\n", "oops\n")
    three = k.run("exec", "sleeper", "--", "sh", "-c", "echo hi; exit 3", check=False)
    assert three.returncode == 3 and three.stdout == "hi\n", three
    assert "command terminated with exit code 3" in three.stderr
    echoed = k.run("exec", "-i", "sleeper", "--", "cat", input="via stdin\nline two\n")
    assert echoed.stdout == "via stdin\nline two\n"
    assert k.out("exec", "sleeper", "--", "sh", "-c", "echo $HOSTNAME") == "sleeper\n"


@pytest.mark.parametrize("version", EXEC_VERSIONS)
def test_exec_chooses_a_container(seeded: Kubectl, version: str) -> None:
    k = seeded.with_version(version)
    assert k.out("exec", "duo", "-c", "a", "--", "sh", "-c", "echo $WHO") == "first\n"
    assert k.out("exec", "duo", "-c", "b", "--", "sh", "-c", "echo $WHO") == "second\n"


def test_exec_with_kubectl_1_27_says_spdy_is_not_supported(seeded: Kubectl) -> None:
    err = seeded.with_version("1.27").fails("exec", "sleeper", "--", "echo", "hi")
    assert "SPDY is not supported; use kubectl 1.30 or newer" in err, err


def test_exec_in_a_missing_container_or_pod(seeded: Kubectl) -> None:
    assert "container nope is not valid for pod duo" in seeded.fails(
        "exec", "duo", "-c", "nope", "--", "true"
    )
    assert 'pods "ghost" not found' in seeded.fails("exec", "ghost", "--", "true")


# ---------------------------------------------------------------------- 3. localhost between containers


def test_two_containers_talk_over_localhost(kubectl: Kubectl, tmp_path: Path) -> None:
    port = 20000 + secrets.randbelow(20000)
    marker = f"page-{secrets.token_hex(4)}"
    (tmp_path / "index.html").write_text(marker + "\n")
    web = container("web", f"exec busybox httpd -f -p 127.0.0.1:{port} -h {tmp_path}")
    client = container(
        "client",
        f"while true; do busybox wget -q -O - http://127.0.0.1:{port}/ || echo failed; sleep 1; done",
    )
    apply(kubectl, pod("talk", web, client))
    wait_phase(kubectl, "talk", "Running")
    wait_until(lambda: marker in kubectl.out("logs", "talk", "-c", "client"), "the client logging the page")
    fetched = kubectl.out(
        "exec", "talk", "-c", "client", "--", "busybox", "wget", "-q", "-O", "-", f"http://127.0.0.1:{port}/"
    )
    assert fetched == marker + "\n"


# ---------------------------------------------------------------------- 4. probes


def test_failing_liveness_probe_restarts_the_container(kubectl: Kubectl) -> None:
    probe = {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}
    # a liveness kill honours the grace period, and `sleep` as PID 1 ignores SIGTERM: keep it short
    apply(
        kubectl,
        pod("unlive", container("app", "sleep 1000", livenessProbe=probe), terminationGracePeriodSeconds=1),
    )
    p = wait_status(
        kubectl,
        "unlive",
        lambda p: container_status(p, "app").get("restartCount", 0) >= 2,
        "restartCount >= 2",
    )
    assert p["status"]["phase"] == "Running"
    assert int(table_row(kubectl, "unlive")["RESTARTS"].split()[0]) >= 2
    last = container_status(p, "app")["lastState"]["terminated"]
    assert last["exitCode"] == 137, last


def test_failing_readiness_probes_keep_the_pod_not_ready(kubectl: Kubectl, tmp_path: Path) -> None:
    tally = tmp_path / "probed"
    closed = 1  # tcpmux: nothing listens there, in the pod's network or the host's
    probes = {
        "bad-exec": {"exec": {"command": ["sh", "-c", f"echo x >> {tally}; false"]}, "periodSeconds": 1},
        "bad-http": {"httpGet": {"path": "/healthz", "port": closed}, "periodSeconds": 1},
        "bad-tcp": {"tcpSocket": {"port": closed}, "periodSeconds": 1},
        "good": {"exec": {"command": ["true"]}, "periodSeconds": 1},
    }
    apply(kubectl, pod("unready", *(container(n, "sleep 1000", readinessProbe=p) for n, p in probes.items())))
    wait_phase(kubectl, "unready", "Running")
    wait_until(lambda: tally.exists() and len(tally.read_text().splitlines()) >= 3, "three readiness probes")
    p = wait_status(
        kubectl, "unready", lambda p: container_status(p, "good").get("ready") is True, "good ready"
    )
    assert p["status"]["phase"] == "Running"
    for name in ("bad-exec", "bad-http", "bad-tcp"):
        status = container_status(p, name)
        assert status["ready"] is False and "running" in status["state"] and status["restartCount"] == 0, (
            status
        )
    assert condition(p, "Ready") == "False" and condition(p, "ContainersReady") == "False"
    ready = next(c for c in p["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ContainersNotReady", ready
    assert ready["message"] == "containers with unready status: [bad-exec bad-http bad-tcp]", ready
    row = table_row(kubectl, "unready")
    assert (row["READY"], row["STATUS"]) == ("1/4", "Running"), row


def test_startup_probe_gates_started_and_ready(kubectl: Kubectl, tmp_path: Path) -> None:
    flag = tmp_path / "started"
    tally = tmp_path / "probed"
    startup = {
        "exec": {"command": ["sh", "-c", f"echo x >> {tally}; test -e {flag}"]},
        "periodSeconds": 1,
        "failureThreshold": 600,
    }
    apply(kubectl, pod("slow", container("app", "sleep 1000", startupProbe=startup)))
    wait_phase(kubectl, "slow", "Running")
    wait_until(lambda: tally.exists() and len(tally.read_text().splitlines()) >= 2, "two startup probes")
    p = get_pod(kubectl, "slow")
    assert container_status(p, "app")["started"] is False and condition(p, "Ready") == "False"
    flag.write_text("now\n")
    p = wait_status(kubectl, "slow", lambda p: condition(p, "Ready") == "True", "Ready after startup")
    assert container_status(p, "app")["started"] is True and container_status(p, "app")["restartCount"] == 0


# ---------------------------------------------------------------------- 5. exit codes and restart policies


def test_exit_3_under_never_fails_the_pod(kubectl: Kubectl) -> None:
    apply(kubectl, pod("three", container("app", "echo bye; exit 3"), restartPolicy="Never"))
    p = wait_phase(kubectl, "three", "Failed")
    terminated = container_status(p, "app")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error"), terminated
    assert container_status(p, "app")["restartCount"] == 0
    assert table_row(kubectl, "three")["STATUS"] == "Error"
    assert kubectl.out("logs", "three") == "bye\n"


def test_on_failure_restarts_until_success(kubectl: Kubectl, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    script = f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ $n -ge 2 ]"
    apply(kubectl, pod("retry", container("app", script), restartPolicy="OnFailure"))
    p = wait_phase(kubectl, "retry", "Succeeded")
    status = container_status(p, "app")
    assert status["restartCount"] == 1 and status["state"]["terminated"]["exitCode"] == 0, status
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert table_row(kubectl, "retry")["STATUS"] == "Completed"


def test_always_crash_loops(kubectl: Kubectl) -> None:
    apply(kubectl, pod("crashy", container("app", "echo crash; exit 1")))
    wait_until(
        lambda: table_row(kubectl, "crashy")["STATUS"] == "CrashLoopBackOff", "STATUS CrashLoopBackOff"
    )
    p = get_pod(kubectl, "crashy")
    assert p["status"]["phase"] == "Running"
    waiting = container_status(p, "app")["state"].get("waiting", {})
    if waiting:  # the column may have been read while the container was briefly restarted
        assert waiting["reason"] == "CrashLoopBackOff" and "back-off" in waiting["message"], waiting
    assert container_status(p, "app")["restartCount"] >= 1


# ---------------------------------------------------------------------- 6. graceful deletion


@pytest.mark.parametrize(
    ("handler", "killed_at_deadline"),
    [
        pytest.param("echo term >> {log}", True, id="ignores-sigterm"),
        pytest.param("echo term >> {log}; exit 0", False, id="exits-on-sigterm"),
    ],
)
def test_delete_stops_the_pod_within_its_grace_period(
    kubectl: Kubectl, tmp_path: Path, handler: str, killed_at_deadline: bool
) -> None:
    marker = f"grace-{secrets.token_hex(6)}"
    log = tmp_path / "signals"
    ticks = tmp_path / "ticks"
    # after SIGTERM the loop keeps ticking until it exits or is killed
    script = (
        f"trap '{handler.format(log=log)}' TERM; "
        f"while true; do [ -e {log} ] && echo tick >> {ticks}; sleep 1; done # {marker}"
    )
    apply(kubectl, pod("graceful", container("app", script), terminationGracePeriodSeconds=5))
    wait_phase(kubectl, "graceful", "Running")
    assert host_pids(marker), "the container's process should be visible on the host"
    started = time.monotonic()
    kubectl.run("delete", "pod", "graceful", "--wait=true", timeout=120)
    elapsed = time.monotonic() - started
    assert "NotFound" in kubectl.fails("get", "pod", "graceful")
    assert host_pids(marker) == []
    assert log.read_text().splitlines() == ["term"]  # SIGTERM came first, once
    tick_count = len(ticks.read_text().splitlines()) if ticks.exists() else 0
    if killed_at_deadline:
        # it outlived SIGTERM and was killed: by the pod's 5 s, not the default 30 s
        assert tick_count >= 2 and elapsed < 30, (tick_count, elapsed)
    else:
        assert tick_count <= 1, tick_count


# ---------------------------------------------------------------------- 7. environment


def test_env_envfrom_downward_api_command_args_and_workdir(kubectl: Kubectl, tmp_path: Path) -> None:
    ns = kubectl.namespace
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"greeting": "hello", "color": "blue"},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"token": base64.b64encode(b"s3cret").decode()},
    }
    app = {
        "name": "app",
        "image": "busybox",
        "command": ["sh", "-c"],
        "args": [
            'echo "args:$0:$1:$(GREETING)"; env | sort; echo "pwd:$(pwd)"; exec sleep 1000',
            "zero",
            "one",
        ],
        "workingDir": str(tmp_path),
        "envFrom": [
            {"configMapRef": {"name": "settings"}, "prefix": "CM_"},
            {"secretRef": {"name": "creds"}},
        ],
        "env": [
            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {
                "name": "MEM_MI",
                "valueFrom": {
                    "resourceFieldRef": {
                        "containerName": "app",
                        "resource": "limits.memory",
                        "divisor": "1Mi",
                    }
                },
            },
            {"name": "COMPOSED", "value": "$(GREETING)-$(POD_NAME)"},
        ],
        "resources": {"limits": {"memory": "64Mi"}},
    }
    apply(kubectl, configmap, secret, pod("envy", app))
    p = wait_phase(kubectl, "envy", "Running")
    wait_until(lambda: "pwd:" in kubectl.out("logs", "envy"), "the env dump")
    lines = kubectl.out("logs", "envy").splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith(("args:", "pwd:")))
    assert lines[0] == "args:zero:one:hello"  # args follow command; $(VAR) expanded by the agent
    assert f"pwd:{tmp_path}" in lines
    expected = {
        "CM_greeting": "hello",
        "CM_color": "blue",
        "token": "s3cret",
        "GREETING": "hello",
        "TOKEN": "s3cret",
        "POD_NAME": "envy",
        "POD_NS": ns,
        "POD_IP": p["status"]["podIP"],
        "NODE": p["spec"]["nodeName"],
        "MEM_MI": "64",
        "COMPOSED": "hello-envy",
        "HOSTNAME": "envy",
    }
    assert {key: env.get(key) for key in expected} == expected


def test_missing_configmap_is_create_container_config_error(kubectl: Kubectl) -> None:
    ref = {"configMapKeyRef": {"name": "absent", "key": "k"}}
    apply(kubectl, pod("noconf", container("app", "sleep 1000", env=[{"name": "X", "valueFrom": ref}])))
    p = wait_status(
        kubectl,
        "noconf",
        lambda p: (
            container_status(p, "app").get("state", {}).get("waiting", {}).get("reason")
            == "CreateContainerConfigError"
        ),
        "CreateContainerConfigError",
    )
    assert 'configmap "absent" not found' in container_status(p, "app")["state"]["waiting"]["message"]
    assert table_row(kubectl, "noconf")["STATUS"] == "CreateContainerConfigError"


# ---------------------------------------------------------------------- 9. the node


def test_node_is_ready_with_capacity_node_info_and_a_renewed_lease(
    raykube_cluster: RaykubeCluster, real_node: dict[str, Any]
) -> None:
    admin = Kubectl(raykube_cluster, "1.33", None)
    name = real_node["metadata"]["name"]
    rows = {line.split()[0]: line.split() for line in admin.out("get", "nodes").splitlines()[1:]}
    assert rows[name][1] == "Ready", rows[name]
    node = admin.json("get", "node", name)
    status = node["status"]
    for resource in ("cpu", "memory", "pods", "ephemeral-storage"):
        assert resource in status["capacity"] and resource in status["allocatable"], resource
    assert int(status["capacity"]["pods"]) > 0
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("process://")
    assert status["nodeInfo"]["kubeletVersion"].startswith("v1.")
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name
    assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "MemoryPressure": "False",
        "DiskPressure": "False",
        "PIDPressure": "False",
        "Ready": "True",
    }
    assert any(a["type"] == "InternalIP" for a in status["addresses"])
    wide = admin.out("get", "node", name, "-o", "wide")
    assert "process://" in wide

    lease = admin.json("get", "lease", name, "-n", "kube-node-lease", namespaced=False)
    assert lease["spec"]["holderIdentity"] == name
    first = lease["spec"]["renewTime"]

    def renewed() -> str | None:
        again = admin.json("get", "lease", name, "-n", "kube-node-lease", namespaced=False)
        return str(again["spec"]["renewTime"]) if again["spec"]["renewTime"] != first else None

    assert wait_until(renewed, "the Lease renewed", timeout=60) > first
