"""Pod names, ordinals, membership and claim names."""

from __future__ import annotations

import pytest

from cluster.controllers.statefulset import identity
from tests.cluster.controllers.statefulset.objects import make_pod, make_sts


def named(name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ns"}}


@pytest.mark.parametrize(
    ("name", "want"),
    [
        pytest.param("db-0", ("db", 0), id="simple"),
        pytest.param("my-db-12", ("my-db", 12), id="dashes-in-set-name"),
        pytest.param("db", ("", -1), id="no-ordinal"),
        pytest.param("db-x", ("", -1), id="not-a-number"),
        pytest.param("db-99999999999", ("db", -1), id="beyond-int32"),
    ],
)
def test_parent_and_ordinal(name: str, want: tuple[str, int]) -> None:
    assert identity.parent_and_ordinal(named(name)) == want


@pytest.mark.parametrize(
    ("name", "member"),
    [
        pytest.param("db-3", True, id="member"),
        pytest.param("dbx-3", False, id="other-set"),
        pytest.param("db-web-3", False, id="longer-prefix"),
    ],
)
def test_is_member_of(name: str, member: bool) -> None:
    assert identity.is_member_of(make_sts(), named(name)) is member


def test_claims_for_names_and_labels() -> None:
    sts = make_sts(claims=("data",))
    sts["spec"]["volumeClaimTemplates"][0]["metadata"]["labels"] = {"tier": "storage"}
    claims = identity.claims_for(sts, 4)
    assert list(claims) == ["data"]
    claim = claims["data"]
    assert claim["metadata"]["name"] == "data-db-4"
    assert claim["metadata"]["namespace"] == "ns"
    assert claim["metadata"]["labels"] == {"tier": "storage", "app": "db"}
    assert claim["kind"] == "PersistentVolumeClaim"


@pytest.mark.parametrize(
    ("mutate", "matches"),
    [
        pytest.param(lambda p: None, True, id="fresh-pod"),
        pytest.param(
            lambda p: p["metadata"]["labels"].pop("apps.kubernetes.io/pod-index"), False, id="no-index"
        ),
        pytest.param(lambda p: p["metadata"].update(namespace="other"), False, id="other-namespace"),
    ],
)
def test_identity_matches(mutate, matches: bool) -> None:  # type: ignore[no-untyped-def]
    sts = make_sts()
    pod = make_pod(sts, 1)
    mutate(pod)
    assert identity.identity_matches(sts, pod) is matches


def test_storage_matches() -> None:
    sts = make_sts(claims=("data",))
    pod = make_pod(sts, 1)
    assert identity.storage_matches(sts, pod)
    pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = "data-db-0"
    assert not identity.storage_matches(sts, pod)
