"""The `ray up` configs in deploy/: each passes Ray's own validation, and their setup and start commands
agree with how raykube really installs and starts (scripts/setup, scripts/debian-packages,
pyproject.toml, the `raykube` command line). No cloud and no Ray cluster: Ray's ``prepare_config``
only merges the provider's defaults file, so it runs offline for every provider; the commands that
can run here do, with fakes for apt-get and sudo on PATH.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from click.exceptions import ClickException
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from ray.autoscaler._private.commands import _bootstrap_config
from ray.autoscaler._private.util import prepare_config, validate_config

from cluster.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PACKAGES = ROOT / "scripts" / "debian-packages"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONFIGS = sorted(DEPLOY.glob("*.yaml"))
CLOUDS = ("aws", "gcp", "azure")
CONTROL_PLANE_RESOURCE = "raykube_control_plane"
ROLE_LABEL = "raykube.io/role"
PUBLIC_IP = "203.0.113.7"
# Installed by the configs besides the shared list: Ubuntu's python3 lacks venv without it.
CONFIG_ONLY_PACKAGES = {"python3-venv"}

COMMAND_LISTS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)


def load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / f"{name}.yaml").read_text()))


def ray_validate(config: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` does to a config before launching anything: merge defaults, then the schema."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def commands(config: dict[str, Any], key: str) -> list[str]:
    return list(config.get(key) or [])


def segments(command: str) -> list[list[str]]:
    """A shell command's simple commands as words (split at ; && || and braces, quotes respected;
    `$PUBLIC_IP` filled in), enough for the plain commands these tests read."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    found: list[list[str]] = [[]]
    for token in lexer:
        if token in (";", "&&", "||", "&", "{", "}"):
            found.append([])
        else:
            found[-1].append(PUBLIC_IP if token == "$PUBLIC_IP" else token)
    return [words for words in found if words]


def raykube_up(config: dict[str, Any]) -> list[str]:
    """The `raykube up ...` words of the head's last start command."""
    last = commands(config, "head_start_ray_commands")[-1]
    ups = [words for words in segments(last) if words[:2] == ["raykube", "up"]]
    assert len(ups) == 1, f"the head's last start command must run `raykube up` once: {last}"
    return ups[0]


def wait_command(config: dict[str, Any]) -> list[str]:
    found = [c for c in commands(config, "head_start_ray_commands") if "wait_for_nodes.py" in c]
    assert len(found) == 1, "the head waits for the control-plane nodes once, before `raykube up`"
    return shlex.split(found[0])


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def remote_home(config: dict[str, Any]) -> str:
    return f"/home/{config['auth']['ssh_user']}"


def fake_home(config: dict[str, Any], tmp_path: Path) -> Path:
    """A home directory laid out as `ray up` leaves the node's: each file mount a link to its source."""
    home = tmp_path / "home"
    prefix = remote_home(config) + "/"
    for remote, local in config["file_mounts"].items():
        assert remote.startswith(prefix), f"file mounts go under the SSH user's home: {remote}"
        if local.startswith("./"):
            target = home / remote.removeprefix(prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(ROOT / local)
    return home


def apt_installed(command: str, home: Path, tmp_path: Path) -> list[str]:
    """Run a setup command with fakes for sudo and apt-get on PATH; the packages it asked to install."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "apt.log"
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec env "$@"\n')
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    for fake in ("sudo", "apt-get"):
        (bin_dir / fake).chmod(0o755)
    env = {"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    subprocess.run(["bash", "-c", command], env=env, check=True, timeout=30)
    installs = [line.split() for line in log.read_text().splitlines() if line.split()[:1] == ["install"]]
    assert len(installs) == 1, log.read_text()
    return [word for word in installs[0][1:] if not word.startswith("-")]


def setup_packages() -> list[str]:
    """The packages scripts/setup installs: its own `pkgs=` line, run in the checkout."""
    lines = [line for line in (ROOT / "scripts" / "setup").read_text().splitlines() if "pkgs=" in line]
    assert len(lines) == 1, "scripts/setup computes its package list in one `pkgs=` line"
    out = subprocess.run(
        ["bash", "-c", f'{lines[0].strip()}; echo "$pkgs"'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def pip_requirements(config: dict[str, Any]) -> list[str]:
    """The requirement arguments of every `pip install` in the setup commands, in order."""
    found: list[str] = []
    for command in commands(config, "setup_commands"):
        for words in segments(command):
            if len(words) > 2 and words[0].endswith("/pip") and words[1] == "install":
                found.extend(w for w in words[2:] if not w.startswith("-"))
    return found


def python_floor(text: str) -> tuple[int, int]:
    found = set(re.findall(r"sys\.version_info < \((\d+), (\d+)\)", text))
    assert len(found) == 1, f"one Python version check: {found}"
    major, minor = next(iter(found))
    return int(major), int(minor)


def specifier_floor(spec: str) -> tuple[int, int]:
    (lower,) = [s.version for s in SpecifierSet(spec) if s.operator == ">="]
    major, minor = lower.split(".")[:2]
    return int(major), int(minor)


# --- Ray's own validation ---------------------------------------------------------------------------


def test_one_config_per_provider() -> None:
    assert [p.stem for p in CONFIGS] == sorted([*CLOUDS, "local"])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_passes_rays_validation(path: Path) -> None:
    config = dict(yaml.safe_load(path.read_text()))
    assert config["provider"]["type"] == path.stem
    prepared = ray_validate(config)
    for key in COMMAND_LISTS:  # the schema's "shell command" strings are shell commands
        for command in commands(prepared, key):
            checked = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
            assert checked.returncode == 0, f"{path.name} {key}: {command}\n{checked.stderr}"


def test_the_local_config_passes_ray_ups_whole_bootstrap() -> None:
    """For the local provider `ray up`'s bootstrap needs no cloud (for AWS, GCP and Azure it calls the
    cloud's SDK and API, so those stop at prepare_config + validate_config above)."""
    bootstrapped = _bootstrap_config(load("local"), no_config_cache=True)
    (node_type,) = bootstrapped["available_node_types"].values()
    workers = len(bootstrapped["provider"]["worker_ips"])
    assert (node_type["min_workers"], node_type["max_workers"]) == (workers, workers)


def test_a_misspelled_top_level_key_is_rejected() -> None:
    config = load("aws")
    config["setup_comands"] = config.pop("setup_commands")
    with pytest.raises(jsonschema.ValidationError, match="Additional properties are not allowed"):
        ray_validate(config)


def test_a_misspelled_node_type_key_is_rejected() -> None:
    config = load("gcp")
    worker = config["available_node_types"]["raykube.worker"]
    worker["min_worker"] = worker.pop("min_workers")
    with pytest.raises(jsonschema.ValidationError, match="Additional properties are not allowed"):
        ray_validate(config)


def test_a_fractional_resource_is_rejected() -> None:
    config = load("azure")
    config["available_node_types"]["raykube.control_plane"]["resources"][CONTROL_PLANE_RESOURCE] = 0.5
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'integer'"):
        ray_validate(config)


def test_a_command_yaml_read_as_a_mapping_is_rejected() -> None:
    """An unquoted ': ' in a command turns it into a mapping: Ray's schema wants strings."""
    text = (DEPLOY / "aws.yaml").read_text().replace("  - ray stop\n", "  - echo stopping: ray stop\n", 1)
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'string'"):
        ray_validate(dict(yaml.safe_load(text)))


def test_more_min_workers_than_max_workers_is_rejected() -> None:
    config = load("aws")
    config["available_node_types"]["raykube.worker"]["min_workers"] = config["max_workers"]
    with pytest.raises(ValueError, match="max_workers"):
        ray_validate(config)


def test_a_local_config_without_worker_ips_is_rejected() -> None:
    config = load("local")
    config["provider"]["worker_ip"] = config["provider"].pop("worker_ips")
    with pytest.raises(ClickException, match="worker_ips"):
        ray_validate(config)


# --- drift between the configs and raykube's real install steps -------------------------------------


def test_scripts_setup_installs_the_package_list_file() -> None:
    listed = [line.split("#")[0].strip() for line in PACKAGES.read_text().splitlines()]
    listed = [p for p in listed if p]
    assert listed and all(re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", p) for p in listed), listed
    assert setup_packages() == listed
    installs = [
        line for line in (ROOT / "scripts" / "setup").read_text().splitlines() if "apt-get install" in line
    ]
    assert installs and all(line.rstrip().endswith("$missing") for line in installs), installs


@pytest.mark.parametrize("name", [*CLOUDS, "local"])
def test_setup_commands_install_the_same_debian_packages_as_scripts_setup(name: str, tmp_path: Path) -> None:
    config = load(name)
    home = fake_home(config, tmp_path)
    apt = [c for c in commands(config, "setup_commands") if "apt-get install" in c]
    assert len(apt) == 1, "one apt-get install in the setup commands"
    assert set(apt_installed(apt[0], home, tmp_path)) == set(setup_packages()) | CONFIG_ONLY_PACKAGES


def test_the_package_drift_test_fails_on_a_package_list_of_its_own(tmp_path: Path) -> None:
    config = load("aws")
    command = next(c for c in commands(config, "setup_commands") if "apt-get install" in c)
    copied = re.sub(r"\$\(sed [^)]*\)", "containerd runc", command)
    installed = set(apt_installed(copied, fake_home(config, tmp_path), tmp_path))
    assert installed != set(setup_packages()) | CONFIG_ONLY_PACKAGES


@pytest.mark.parametrize("name", [*CLOUDS, "local"])
def test_ray_is_pinned_to_the_version_pyproject_allows_and_this_checkout_runs(name: str) -> None:
    pins = [Requirement(r) for r in pip_requirements(load(name)) if r.startswith("ray")]
    assert len(pins) == 1, pins
    (pin,) = pins
    (ours,) = [Requirement(d) for d in PYPROJECT["project"]["dependencies"] if Requirement(d).name == "ray"]
    (exact,) = [s.version for s in pin.specifier if s.operator == "=="]
    assert pin.extras == ours.extras
    assert ours.specifier.contains(exact), f"ray=={exact} is outside pyproject's {ours.specifier}"
    assert exact == importlib.metadata.version("ray"), "the configs pin the Ray this checkout validates with"


@pytest.mark.parametrize("name", [*CLOUDS, "local"])
def test_setup_installs_the_wheel_built_from_the_checkout(name: str) -> None:
    config = load(name)
    dist = f"{remote_home(config)}/raykube/dist"
    assert config["file_mounts"][dist] == "./dist"
    wheel = f"~/raykube/dist/{PYPROJECT['project']['name'].replace('-', '_')}-*.whl"
    requirements = pip_requirements(config)
    # Once with its dependencies, then again without them: a rebuilt wheel keeps its version number.
    assert requirements.count(wheel) == 2, requirements
    reinstall = [c for c in commands(config, "setup_commands") if "--force-reinstall --no-deps " + wheel in c]
    assert reinstall, "an upgrade reinstalls the wheel even when its version did not change"


@pytest.mark.parametrize("name", [*CLOUDS, "local"])
def test_the_python_floor_is_raykubes_and_rays(name: str) -> None:
    setup = "\n".join(commands(load(name), "setup_commands"))
    ours = specifier_floor(PYPROJECT["project"]["requires-python"])
    rays = specifier_floor(importlib.metadata.metadata("ray")["Requires-Python"])
    assert python_floor(setup) == max(ours, rays)
    assert python_floor((ROOT / "scripts" / "setup").read_text()) == ours
    check = next(c for c in commands(load(name), "setup_commands") if "sys.version_info" in c)
    ran = subprocess.run(["bash", "-c", check.replace("python3 ", f"{sys.executable} ", 1)], check=False)
    assert ran.returncode == 0, "this checkout's own Python passes the check"


@pytest.mark.parametrize("name", [*CLOUDS, "local"])
def test_commands_name_only_console_scripts_the_package_installs(name: str) -> None:
    scripts = set(PYPROJECT["project"]["scripts"])
    config = load(name)
    used = {
        words[0]
        for key in COMMAND_LISTS
        for command in commands(config, key)
        for words in segments(command)
        if words and words[0].startswith("raykube")
    }
    assert used and used <= scripts, f"{used - scripts} are not in pyproject's [project.scripts]"


def parse_up(config: dict[str, Any]) -> argparse.Namespace:
    """The head's `raykube up` as the real command line parses it; AssertionError if it refuses."""
    words = raykube_up(config)
    try:
        return build_parser().parse_args(words[1:])
    except SystemExit as e:
        raise AssertionError(f"`raykube` does not accept {shlex.join(words)} (exit {e.code})") from None


@pytest.mark.parametrize("name", [*CLOUDS, "local"])
def test_the_head_ends_with_raykube_up_as_the_cli_parses_it(name: str) -> None:
    args = parse_up(load(name))
    assert (args.command, args.address, args.replicas) == ("up", "auto", 3)
    expected = "192.168.1.10" if name == "local" else PUBLIC_IP
    assert expected in list(args.tls_san)


def test_the_cli_check_fails_on_an_unknown_flag() -> None:
    config = load("aws")
    config["head_start_ray_commands"][-1] += " --replicaz 3"
    with pytest.raises(AssertionError, match="does not accept"):
        parse_up(config)


@pytest.mark.parametrize("name", CLOUDS)
def test_cloud_node_types_give_raykube_three_control_plane_nodes_and_workers(name: str) -> None:
    config = ray_validate(load(name))
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    replicas = int(option(raykube_up(config), "--replicas"))
    wait = wait_command(config)
    assert option(wait, "--resource") == CONTROL_PLANE_RESOURCE
    assert int(option(wait, "--count")) == replicas
    control_plane = [t for t in types.values() if t["resources"].get(CONTROL_PLANE_RESOURCE)]
    assert head in control_plane
    # Fixed-size: the store's replicas live on these nodes, so the autoscaler must not remove them.
    assert all(t["min_workers"] == t["max_workers"] for t in control_plane if t is not head)
    assert 1 + sum(t["min_workers"] for t in control_plane if t is not head) == replicas
    for t in types.values():
        role = "control-plane" if t in control_plane else "worker"
        assert t["labels"] == {ROLE_LABEL: role}
    assert any(t["labels"][ROLE_LABEL] == "worker" and t["max_workers"] > 0 for t in types.values())
    starts = commands(config, "head_start_ray_commands")
    assert starts.index(" ".join(wait)) < len(starts) - 1, "the wait comes before `raykube up`"


def test_local_hosts_give_raykube_three_control_plane_nodes_and_workers() -> None:
    config = load("local")
    replicas = int(option(raykube_up(config), "--replicas"))
    assert int(option(wait_command(config), "--count")) == replicas
    head_start = next(c for c in commands(config, "head_start_ray_commands") if "ray start --head" in c)
    head_words = shlex.split(head_start.split(";")[-1])
    assert json.loads(option_eq(head_words, "--resources")) == {CONTROL_PLANE_RESOURCE: 1}
    assert option_eq(head_words, "--labels") == f"{ROLE_LABEL}=control-plane"
    worker_start = commands(config, "worker_start_ray_commands")[-1]
    (listed,) = re.findall(r'CONTROL_PLANE="([^"]*)"', worker_start)
    control_plane = listed.split()
    assert len(control_plane) == replicas - 1
    assert set(control_plane) <= set(config["provider"]["worker_ips"])
    assert len(config["provider"]["worker_ips"]) > len(control_plane), "some hosts run pods"
    assert f"{ROLE_LABEL}=$ROLE" in worker_start and CONTROL_PLANE_RESOURCE in worker_start


def option_eq(words: list[str], name: str) -> str:
    (value,) = [w.split("=", 1)[1] for w in words if w.startswith(name + "=")]
    return value


@pytest.mark.parametrize("name", [*CLOUDS, "local"])
def test_token_auth_and_mounts_as_ray_documents(name: str) -> None:
    config = load(name)
    home = remote_home(config)
    assert config["file_mounts"][f"{home}/.ray/auth_token"] == "~/.ray/auth_token"
    assert any("export RAY_AUTH_MODE=token" in c for c in commands(config, "initialization_commands"))
    for remote, local in config["file_mounts"].items():
        if local.startswith("./") and local != "./dist":  # dist/ is built before `ray up`
            assert (ROOT / local).exists(), f"{remote}: {local} is not in the checkout"
    wait = wait_command(config)
    mounted = wait[1].replace("~", home)
    source = next(
        local for remote, local in config["file_mounts"].items() if mounted.startswith(remote + "/")
    )
    assert (ROOT / source / Path(mounted).name).is_file()


# --- the head's wait for the control-plane nodes ----------------------------------------------------


def _wait_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wait_for_nodes", DEPLOY / "wait_for_nodes.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wait_counts_alive_nodes_offering_the_resource() -> None:
    nodes_with = _wait_module().nodes_with
    nodes = [
        {"NodeID": "head", "Alive": True, "Resources": {"CPU": 2.0, CONTROL_PLANE_RESOURCE: 1.0}},
        {"NodeID": "cp-dead", "Alive": False, "Resources": {CONTROL_PLANE_RESOURCE: 1.0}},
        {"NodeID": "cp-2", "Alive": True, "Resources": {CONTROL_PLANE_RESOURCE: 1.0}},
        {"NodeID": "worker", "Alive": True, "Resources": {"CPU": 4.0}},
        {"NodeID": "partial", "Alive": True, "Resources": {CONTROL_PLANE_RESOURCE: 0.5}},
    ]
    assert nodes_with(nodes, CONTROL_PLANE_RESOURCE) == ["head", "cp-2"]
    assert nodes_with([], CONTROL_PLANE_RESOURCE) == []


def test_the_guides_security_group_example_passes_rays_validation() -> None:
    """docs/deploy.md's extra inbound rule for the API server, merged into deploy/aws.yaml."""
    guide = (ROOT / "docs" / "deploy.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if "security_group" in b]
    example = yaml.safe_load(block.replace("  ...\n", ""))
    config = load("aws")
    config["provider"].update(example["provider"])
    rule = ray_validate(config)["provider"]["security_group"]["IpPermissions"][0]
    assert (rule["FromPort"], rule["ToPort"]) == (6443, 6443)
    config["provider"]["security_group"]["IpPermission"] = config["provider"]["security_group"].pop(
        "IpPermissions"
    )
    with pytest.raises(jsonschema.ValidationError, match="Additional properties are not allowed"):
        ray_validate(config)
