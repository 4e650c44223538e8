"""Server-side apply and managedFields: create, re-apply, conflicts, force, removal, shared ownership."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from cluster.apiserver.patch import ApplyConflict, PatchError, apply_patch, update_managed_fields
from cluster.apiserver.patch.fieldpath import from_fields_v1, path_string, to_fields_v1

KIND = ("apps/v1", "Deployment")
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2024, 5, 1, 13, 0, 0, tzinfo=UTC)


def manifest(replicas: int = 2, image: str = "nginx:1.25", **extra_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]},
            },
            **extra_spec,
        },
    }


def apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    manager: str = "kubectl",
    *,
    force: bool = False,
    now: datetime = T0,
) -> dict[str, Any]:
    return apply_patch(live, config, manager=manager, force=force, kind_key=KIND, now=now)


def managers(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])]


def owned(obj: dict[str, Any], manager: str) -> set[str]:
    for entry in obj["metadata"]["managedFields"]:
        if entry["manager"] == manager:
            return {path_string(p) for p in from_fields_v1(entry["fieldsV1"])}
    return set()


def test_create_by_apply_records_managed_fields_shape() -> None:
    obj = apply(None, manifest())
    assert obj["spec"]["replicas"] == 2
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": "2024-05-01T12:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {
                            "f:containers": {
                                'k:{"name":"nginx"}': {
                                    ".": {},
                                    "f:image": {},
                                    "f:name": {},
                                    "f:ports": {
                                        'k:{"containerPort":80,"protocol":"TCP"}': {
                                            ".": {},
                                            "f:containerPort": {},
                                        }
                                    },
                                }
                            }
                        },
                    },
                },
            },
        }
    ]


def test_reapply_unchanged_returns_live_object_unchanged() -> None:
    live = apply(None, manifest())
    assert apply(live, manifest(), now=T1) == live


def test_reapply_with_changed_field_updates_value_and_time() -> None:
    live = apply(None, manifest())
    obj = apply(live, manifest(image="nginx:1.26"), now=T1)
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert managers(obj) == [("kubectl", "Apply")]
    assert obj["metadata"]["managedFields"][0]["time"] == "2024-05-01T13:00:00Z"


@pytest.mark.parametrize(
    ("second", "conflicting"),
    [
        pytest.param({"spec": {"replicas": 5}}, [("first", ".spec.replicas")], id="scalar"),
        pytest.param(
            {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "other"}]}}}},
            [("first", '.spec.template.spec.containers[name="nginx"].image')],
            id="keyed-list-item-field",
        ),
        pytest.param(
            {"spec": {"selector": {"matchLabels": {"app": "x"}}}},
            [("first", ".spec.selector")],
            id="atomic-struct",
        ),
        pytest.param(
            {"spec": {"replicas": 5, "template": {"metadata": {"labels": {"app": "x"}}}}},
            [("first", ".spec.replicas"), ("first", ".spec.template.metadata.labels.app")],
            id="two-fields",
        ),
    ],
)
def test_conflict_with_other_apply_manager(
    second: dict[str, Any], conflicting: list[tuple[str, str]]
) -> None:
    live = apply(None, manifest(), "first")
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, **second}
    with pytest.raises(ApplyConflict) as err:
        apply(live, config, "second")
    assert err.value.conflicts == conflicting
    assert all(cause["reason"] == "FieldManagerConflict" for cause in err.value.causes())
    assert err.value.causes()[0]["message"] == 'conflict with "first"'


def test_force_moves_ownership() -> None:
    live = apply(None, manifest(), "first")
    config = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 5},
    }
    obj = apply(live, config, "second", force=True)
    assert obj["spec"]["replicas"] == 5
    assert ".spec.replicas" in owned(obj, "second")
    assert ".spec.replicas" not in owned(obj, "first")
    # the first manager now conflicts when it re-applies its old value
    with pytest.raises(ApplyConflict) as err:
        apply(obj, manifest(), "first")
    assert err.value.conflicts == [("second", ".spec.replicas")]


def test_equal_values_are_shared_not_conflicting() -> None:
    live = apply(None, manifest(), "first")
    config = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2},
    }
    obj = apply(live, config, "second")
    assert ".spec.replicas" in owned(obj, "first") and ".spec.replicas" in owned(obj, "second")
    # a shared field survives when one owner stops applying it
    obj = apply(obj, {**config, "spec": {}}, "second", now=T1)
    assert obj["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("omitted", "check"),
    [
        pytest.param(
            lambda m: m["metadata"].pop("labels"),
            lambda o: "labels" not in o["metadata"],
            id="label-map-pruned",
        ),
        pytest.param(
            lambda m: m["spec"].pop("replicas"),
            lambda o: "replicas" not in o["spec"],
            id="scalar-removed",
        ),
        pytest.param(
            lambda m: m["spec"]["template"]["spec"]["containers"][0].pop("ports"),
            lambda o: "ports" not in o["spec"]["template"]["spec"]["containers"][0],
            id="keyed-list-emptied",
        ),
    ],
)
def test_fields_omitted_by_their_only_owner_are_removed(omitted: Any, check: Any) -> None:
    live = apply(None, manifest())
    config = manifest()
    omitted(config)
    assert check(apply(live, config, now=T1))


def test_container_removed_when_applier_omits_it_but_kept_when_others_own_it() -> None:
    two = manifest()
    two["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    live = apply(None, two)
    dropped = apply(live, manifest(), now=T1)
    assert [c["name"] for c in dropped["spec"]["template"]["spec"]["containers"]] == ["nginx"]

    sidecar_cfg = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}},
    }
    shared = apply(live, sidecar_cfg, "injector")
    kept = apply(shared, manifest(), now=T1)
    assert [c["name"] for c in kept["spec"]["template"]["spec"]["containers"]] == ["nginx", "sidecar"]


def test_fields_set_by_others_are_kept_when_not_applied() -> None:
    live = apply(None, manifest())
    live = update_managed_fields(
        live, {**live, "spec": {**live["spec"], "paused": True}}, manager="kubectl-edit", now=T0
    )
    obj = apply(live, manifest(image="nginx:1.26"), now=T1)
    assert obj["spec"]["paused"] is True


def test_server_side_apply_after_client_side_apply() -> None:
    created = update_managed_fields(None, manifest(), manager="kubectl-client-side-apply", now=T0)
    assert managers(created) == [("kubectl-client-side-apply", "Update")]
    same = apply(created, manifest(), now=T1)
    assert managers(same) == [("kubectl", "Apply"), ("kubectl-client-side-apply", "Update")]
    with pytest.raises(ApplyConflict) as err:
        apply(created, manifest(replicas=3), now=T1)
    assert err.value.conflicts == [("kubectl-client-side-apply", ".spec.replicas")]
    assert err.value.message() == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1 '
        "at 2024-05-01T12:00:00Z: .spec.replicas"
    )


def test_multi_conflict_message_groups_by_manager() -> None:
    live = apply(None, manifest(), "first")
    with pytest.raises(ApplyConflict) as err:
        apply(live, manifest(replicas=9, image="x"), "second")
    assert err.value.message() == (
        'Apply failed with 2 conflicts: conflicts with "first":\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="nginx"].image'
    )


def test_apply_merges_keyed_lists_in_applied_order() -> None:
    two = manifest()
    two["spec"]["template"]["spec"]["containers"] = [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]
    live = apply(None, two)
    swapped = copy.deepcopy(two)
    swapped["spec"]["template"]["spec"]["containers"].reverse()
    obj = apply(live, swapped, now=T1)
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["b", "a"]


@pytest.mark.parametrize(
    ("config", "code", "fragment"),
    [
        pytest.param(
            {**manifest(), "metadata": {"name": "web", "managedFields": []}},
            400,
            "managedFields",
            id="managedFields-set",
        ),
        pytest.param(
            manifest() | {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
            422,
            'omits key field "name"',
            id="missing-list-key",
        ),
    ],
)
def test_malformed_configurations(config: dict[str, Any], code: int, fragment: str) -> None:
    with pytest.raises(PatchError) as err:
        apply(None, config)
    assert err.value.code == code and fragment in str(err.value)


def test_null_in_configuration_means_unspecified() -> None:
    config = manifest()
    config["spec"]["paused"] = None
    obj = apply(None, config)
    assert "paused" not in obj["spec"]
    assert ".spec.paused" not in owned(obj, "kubectl")


# update_managed_fields -------------------------------------------------------------------------------


def test_update_takes_changed_fields_from_other_managers() -> None:
    live = apply(None, manifest())
    changed = copy.deepcopy(live)
    changed["spec"]["replicas"] = 7
    obj = update_managed_fields(live, changed, manager="kubectl-scale", now=T1)
    assert owned(obj, "kubectl-scale") == {".spec.replicas"}
    assert ".spec.replicas" not in owned(obj, "kubectl")
    with pytest.raises(ApplyConflict) as err:
        apply(obj, manifest())
    assert err.value.conflicts == [("kubectl-scale", ".spec.replicas")]


def test_update_drops_removed_fields_and_noop_keeps_entries() -> None:
    live = update_managed_fields(None, manifest(), manager="m", now=T0)
    same = update_managed_fields(live, copy.deepcopy(live), manager="m", now=T1)
    assert same == live
    smaller = copy.deepcopy(live)
    del smaller["metadata"]["labels"]
    obj = update_managed_fields(live, smaller, manager="other", now=T1)
    assert ".metadata.labels.app" not in owned(obj, "m")
    assert managers(obj) == [("m", "Update")]


def test_update_with_explicit_empty_managed_fields_resets_them() -> None:
    live = update_managed_fields(None, manifest(), manager="m", now=T0)
    reset = copy.deepcopy(live)
    reset["metadata"]["managedFields"] = []
    reset["spec"]["replicas"] = 4
    obj = update_managed_fields(live, reset, manager="n", now=T1)
    assert managers(obj) == [("n", "Update")] and owned(obj, "n") == {".spec.replicas"}


# field paths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text"),
    [
        pytest.param(("f:spec", "f:replicas"), ".spec.replicas", id="fields"),
        pytest.param(("f:spec", 'k:{"name":"nginx"}', "f:image"), '.spec[name="nginx"].image', id="key"),
        pytest.param(
            ('k:{"containerPort":80,"protocol":"TCP"}',), '[containerPort=80,protocol="TCP"]', id="two-keys"
        ),
        pytest.param(("f:metadata", "f:finalizers", 'v:"a"'), '.metadata.finalizers[="a"]', id="set-member"),
    ],
)
def test_path_string(path: tuple[str, ...], text: str) -> None:
    assert path_string(path) == text


def test_fields_v1_round_trip_and_dot_marker() -> None:
    fields = frozenset({("f:a",), ("f:a", "f:b"), ("f:c", 'k:{"k":1}'), ("f:c", 'k:{"k":1}', "f:x")})
    encoded = to_fields_v1(fields)
    assert encoded == {"f:a": {".": {}, "f:b": {}}, "f:c": {'k:{"k":1}': {".": {}, "f:x": {}}}}
    assert from_fields_v1(encoded) == fields
