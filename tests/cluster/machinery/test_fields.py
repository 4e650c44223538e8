"""Field selector grammar and matching against a caller's table of supported fields."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.machinery.fields import FieldSelectorError, field_path, parse_field_selector

FIELDS = {
    "metadata.name": field_path("metadata", "name"),
    "spec.nodeName": field_path("spec", "nodeName"),
    "spec.hostNetwork": field_path("spec", "hostNetwork"),
}
POD: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "hostNetwork": True}}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        pytest.param(None, True, id="none"),
        pytest.param("", True, id="empty"),
        pytest.param("spec.nodeName=n1", True, id="equals"),
        pytest.param("spec.nodeName==n1", True, id="double-equals"),
        pytest.param("spec.nodeName!=n1", False, id="not-equals"),
        pytest.param(" spec.nodeName = n1 , metadata.name=p", True, id="spaces-and-two-clauses"),
        pytest.param("spec.nodeName=n1,metadata.name=q", False, id="one-clause-fails"),
        pytest.param("spec.hostNetwork=true", True, id="boolean-as-text"),
        pytest.param("spec.nodeName=", False, id="empty-value"),
    ],
)
def test_matches(text: str | None, matches: bool) -> None:
    assert parse_field_selector(text, FIELDS).matches(POD) is matches


def test_missing_field_reads_as_empty() -> None:
    assert parse_field_selector("spec.nodeName=", FIELDS).matches({"spec": {}})


def test_exact() -> None:
    selector = parse_field_selector("spec.nodeName=n1,metadata.name!=x", FIELDS)
    assert selector.exact("spec.nodeName") == "n1"
    assert selector.exact("metadata.name") is None
    assert not selector.empty and parse_field_selector(None, FIELDS).empty


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "spec.nodeName", "invalid selector: 'spec.nodeName'; can't understand", id="no-operator"
        ),
        pytest.param("status.phase=Running", "field label not supported: status.phase", id="unsupported"),
    ],
)
def test_rejects(text: str, message: str) -> None:
    with pytest.raises(FieldSelectorError, match=message):
        parse_field_selector(text, FIELDS)
