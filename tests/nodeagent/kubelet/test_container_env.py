"""container_env: argv, env order, $(VAR) expansion, valueFrom sources, kubelet's error texts."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nodeagent.kubelet.container_env import (
    CreateContainerConfigError,
    EnvSources,
    ImageConfig,
    container_command,
    expand,
    final_argv,
    make_environment,
    mapping_for,
    master_service_env,
)

POD: dict[str, Any] = {
    "metadata": {
        "name": "web",
        "namespace": "prod",
        "uid": "u-1",
        "labels": {"app": "web"},
        "annotations": {"team": "core"},
    },
    "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": [{"name": "c"}]},
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SOURCES = EnvSources(
    config_maps={"cm": {"data": {"B": "2", "A": "1"}}},
    secrets={"sec": {"data": {"PASS": b64("s3cret")}}},
    node_allocatable={"cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi"},
    host_ips=("10.0.0.1",),
    pod_ips=("10.244.0.5", "fd00::5"),
)


@pytest.mark.parametrize(
    ("text", "env", "want"),
    [
        pytest.param("$(A)", {"A": "x"}, "x", id="defined"),
        pytest.param("$(MISSING)", {}, "$(MISSING)", id="undefined-stays-literal"),
        pytest.param("$$(A)", {"A": "x"}, "$(A)", id="escaped"),
        pytest.param("$$$(A)", {"A": "x"}, "$x", id="escaped-dollar-then-ref"),
        pytest.param("a$b", {}, "a$b", id="lone-dollar"),
        pytest.param("end$", {}, "end$", id="trailing-dollar"),
        pytest.param("$(A", {"A": "x"}, "$(A", id="unclosed"),
        pytest.param("$(A)-$(B)", {"A": "1", "B": "2"}, "1-2", id="two-refs"),
        pytest.param("$()", {}, "$()", id="empty-name"),
    ],
)
def test_expand(text: str, env: dict[str, str], want: str) -> None:
    assert expand(text, mapping_for(env)) == want


IMG = ImageConfig(entrypoint=("/entry",), cmd=("default",))


@pytest.mark.parametrize(
    ("command", "args", "want"),
    [
        pytest.param((), (), ("/entry", "default"), id="image-defaults"),
        pytest.param(("/bin/sh",), (), ("/bin/sh",), id="command-drops-cmd"),
        pytest.param((), ("x",), ("/entry", "x"), id="args-replace-cmd"),
        pytest.param(("/bin/sh",), ("-c", "true"), ("/bin/sh", "-c", "true"), id="both"),
    ],
)
def test_final_argv(command: tuple[str, ...], args: tuple[str, ...], want: tuple[str, ...]) -> None:
    assert final_argv(command, args, IMG) == want


def env_of(container: dict[str, Any], sources: EnvSources = SOURCES) -> dict[str, str]:
    return make_environment(POD, {"name": "c", **container}, sources)


@pytest.mark.parametrize(
    ("container", "want"),
    [
        pytest.param(
            {"envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "P_"}]},
            [("P_A", "1"), ("P_B", "2")],
            id="envFrom-prefix-sorted",
        ),
        pytest.param(
            {"envFrom": [{"configMapRef": {"name": "cm"}}], "env": [{"name": "A", "value": "over"}]},
            [("A", "over"), ("B", "2")],
            id="env-overrides-envFrom-in-place",
        ),
        pytest.param(
            {"env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "$(X)-$(Z)"}]},
            [("X", "1"), ("Y", "1-$(Z)")],
            id="expansion-sees-earlier-only",
        ),
        pytest.param(
            {"envFrom": [{"secretRef": {"name": "sec"}}]}, [("PASS", "s3cret")], id="secret-decoded"
        ),
        pytest.param(
            {"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "PASS"}}}]},
            [("K", "s3cret")],
            id="secretKeyRef",
        ),
        pytest.param(
            {"env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "A"}}}]},
            [("K", "1")],
            id="configMapKeyRef",
        ),
        pytest.param(
            {
                "env": [
                    {
                        "name": "K",
                        "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "A", "optional": True}},
                    }
                ]
            },
            [],
            id="optional-missing-configmap-skips",
        ),
        pytest.param(
            {
                "env": [
                    {
                        "name": "K",
                        "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "Z", "optional": True}},
                    }
                ]
            },
            [],
            id="optional-missing-key-skips",
        ),
        pytest.param(
            {"envFrom": [{"secretRef": {"name": "nope", "optional": True}}]}, [], id="optional-envFrom"
        ),
        pytest.param(
            {
                "env": [
                    {"name": "V", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "PASS"}}},
                    {"name": "W", "value": "$(V)!"},
                ]
            },
            [("V", "s3cret"), ("W", "s3cret!")],
            id="ref-to-secret-var",
        ),
    ],
)
def test_environment(container: dict[str, Any], want: list[tuple[str, str]]) -> None:
    assert list(env_of(container).items()) == want


def field(path: str) -> dict[str, Any]:
    return {"env": [{"name": "F", "valueFrom": {"fieldRef": {"fieldPath": path}}}]}


@pytest.mark.parametrize(
    ("path", "want"),
    [
        pytest.param("metadata.name", "web", id="name"),
        pytest.param("metadata.namespace", "prod", id="namespace"),
        pytest.param("metadata.uid", "u-1", id="uid"),
        pytest.param("metadata.labels['app']", "web", id="label"),
        pytest.param("metadata.annotations['team']", "core", id="annotation"),
        pytest.param("metadata.labels['none']", "", id="label-missing"),
        pytest.param("spec.nodeName", "n1", id="nodeName"),
        pytest.param("spec.serviceAccountName", "sa", id="serviceAccountName"),
        pytest.param("status.hostIP", "10.0.0.1", id="hostIP"),
        pytest.param("status.podIP", "10.244.0.5", id="podIP"),
        pytest.param("status.podIPs", "10.244.0.5,fd00::5", id="podIPs"),
    ],
)
def test_field_ref(path: str, want: str) -> None:
    assert env_of(field(path)) == {"F": want}


def res(
    resource: str,
    divisor: str | None = None,
    limits: dict[str, str] | None = None,
    requests: dict[str, str] | None = None,
) -> dict[str, Any]:
    ref: dict[str, Any] = {"resource": resource}
    if divisor:
        ref["divisor"] = divisor
    return {
        "resources": {"limits": limits or {}, "requests": requests or {}},
        "env": [{"name": "R", "valueFrom": {"resourceFieldRef": ref}}],
    }


@pytest.mark.parametrize(
    ("container", "want"),
    [
        pytest.param(res("limits.cpu", limits={"cpu": "250m"}), "1", id="cpu-rounds-up"),
        pytest.param(res("limits.cpu", "1m", limits={"cpu": "250m"}), "250", id="cpu-millis"),
        pytest.param(res("limits.cpu"), "2", id="cpu-limit-defaults-to-allocatable"),
        pytest.param(res("limits.memory", "1Mi", limits={"memory": "64Mi"}), "64", id="memory-Mi"),
        pytest.param(res("limits.memory", "1Mi"), "4096", id="memory-default-allocatable"),
        pytest.param(res("requests.memory", "1Mi", requests={"memory": "1500Ki"}), "2", id="memory-ceil"),
        pytest.param(res("requests.cpu"), "0", id="request-missing-is-zero"),
        pytest.param(res("limits.ephemeral-storage", "1Gi"), "10", id="ephemeral"),
    ],
)
def test_resource_field_ref(container: dict[str, Any], want: str) -> None:
    assert env_of(container) == {"R": want}


@pytest.mark.parametrize(
    ("container", "message"),
    [
        pytest.param(
            {"envFrom": [{"configMapRef": {"name": "x"}}]}, 'configmap "x" not found', id="cm-envFrom"
        ),
        pytest.param(
            {"envFrom": [{"secretRef": {"name": "x"}}]}, 'secret "x" not found', id="secret-envFrom"
        ),
        pytest.param(
            {"env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "A"}}}]},
            'configmap "x" not found',
            id="cm-keyref",
        ),
        pytest.param(
            {"env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "Z"}}}]},
            "couldn't find key Z in ConfigMap prod/cm",
            id="cm-key-missing",
        ),
        pytest.param(
            {"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "Z"}}}]},
            "couldn't find key Z in Secret prod/sec",
            id="secret-key-missing",
        ),
        pytest.param(field("spec.bogus"), "unsupported fieldPath: spec.bogus", id="bad-fieldpath"),
        pytest.param(res("limits.gpu"), "unsupported container resource : limits.gpu", id="bad-resource"),
    ],
)
def test_config_errors(container: dict[str, Any], message: str) -> None:
    with pytest.raises(CreateContainerConfigError) as err:
        env_of(container)
    assert str(err.value) == message
    assert err.value.reason == "CreateContainerConfigError"


def test_container_command_expands_command_and_args_with_env() -> None:
    container = {
        "name": "c",
        "command": ["/bin/echo", "$(GREETING)"],
        "args": ["$(WHO)", "$$(WHO)", "$(NOPE)"],
        "env": [{"name": "GREETING", "value": "hi"}, {"name": "WHO", "value": "you"}],
        "workingDir": "/w",
    }
    got = container_command(POD, container, SOURCES, ImageConfig(env=(("PATH", "/bin"), ("WHO", "img"))))
    assert got.argv == ("/bin/echo", "hi", "you", "$(WHO)", "$(NOPE)")
    assert got.env == (("PATH", "/bin"), ("WHO", "you"), ("GREETING", "hi"))
    assert got.working_dir == "/w"


def test_working_dir_defaults_to_image() -> None:
    got = container_command(POD, {"name": "c"}, SOURCES, ImageConfig(working_dir="/img"))
    assert got.working_dir == "/img"


KUBERNETES_SERVICE = {
    "metadata": {"name": "kubernetes", "namespace": "default"},
    "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]},
}


def test_master_service_env_is_the_kubelets() -> None:
    assert dict(master_service_env(KUBERNETES_SERVICE)) == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
    }
    assert master_service_env({"spec": {"clusterIP": "None", "ports": []}}) == ()


def test_service_env_comes_first_and_env_overrides_and_expands_it() -> None:
    container = {
        "name": "c",
        "env": [
            {"name": "KUBERNETES_SERVICE_PORT", "value": "8443"},
            {"name": "API", "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"},
        ],
    }
    sources = EnvSources(service_env=master_service_env(KUBERNETES_SERVICE))
    env = make_environment({"metadata": {"namespace": "ns"}}, container, sources)
    assert next(iter(env)) == "KUBERNETES_SERVICE_HOST"
    assert env["KUBERNETES_SERVICE_PORT"] == "8443"
    assert env["API"] == "https://10.96.0.1:8443"
