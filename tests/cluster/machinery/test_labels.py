"""Label selector parsing and matching, string form and metav1.LabelSelector form."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.machinery.labels import (
    EVERYTHING,
    NOTHING,
    SelectorError,
    as_selector,
    label_selector_from_dict,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "front", "rank": "3", "example.com/team": "core"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        pytest.param("", True, id="empty-matches-all"),
        pytest.param("app=web", True, id="equals"),
        pytest.param("app==web", True, id="double-equals"),
        pytest.param("app=db", False, id="equals-other"),
        pytest.param("app!=db", True, id="not-equals"),
        pytest.param("missing!=x", True, id="not-equals-matches-absent"),
        pytest.param("app", True, id="exists"),
        pytest.param("missing", False, id="exists-absent"),
        pytest.param("!missing", True, id="does-not-exist"),
        pytest.param("!app", False, id="does-not-exist-present"),
        pytest.param("tier in (front, back)", True, id="in"),
        pytest.param("tier in (back)", False, id="in-other"),
        pytest.param("tier notin (back)", True, id="notin"),
        pytest.param("missing notin (a)", True, id="notin-matches-absent"),
        pytest.param("missing in (a)", False, id="in-absent"),
        pytest.param("rank>2", True, id="gt"),
        pytest.param("rank < 3", False, id="lt-equal"),
        pytest.param("app>2", False, id="gt-non-numeric-label"),
        pytest.param("app=web,tier in (front),!missing,rank>1", True, id="conjunction"),
        pytest.param("app=web,tier=back", False, id="conjunction-one-fails"),
        pytest.param("example.com/team=core", True, id="prefixed-key"),
        pytest.param(" app = web ", True, id="spaces"),
    ],
)
def test_parse_and_match(text: str, matches: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is matches


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("app=web,", id="trailing-comma"),
        pytest.param("tier in (a", id="unbalanced"),
        pytest.param("tier in ((a))", id="nested"),
        pytest.param("rank>x", id="gt-non-integer"),
        pytest.param("-bad=x", id="bad-key"),
        pytest.param("app=-bad", id="bad-value"),
        pytest.param("app web", id="garbage"),
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(text)


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        pytest.param({}, True, id="empty-dict-matches-all"),
        pytest.param({"matchLabels": {"app": "web"}}, True, id="match-labels"),
        pytest.param({"matchLabels": {"app": "web", "tier": "back"}}, False, id="match-labels-all-must-hold"),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}, True, id="in"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["a"]}]}, True, id="notin"
        ),
        pytest.param({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True, id="exists"),
        pytest.param({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False, id="dne"),
        pytest.param(
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "rank", "operator": "In", "values": ["1"]}],
            },
            False,
            id="both",
        ),
    ],
)
def test_label_selector_dict(selector: dict[str, Any], matches: bool) -> None:
    assert label_selector_from_dict(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    "selector",
    [
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, id="in-without-values"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, id="exists-values"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, id="unknown-op"
        ),
    ],
)
def test_label_selector_dict_rejects(selector: dict[str, Any]) -> None:
    with pytest.raises(SelectorError):
        label_selector_from_dict(selector)


def test_none_dict_selects_nothing_but_as_selector_none_selects_everything() -> None:
    assert label_selector_from_dict(None) is NOTHING and not NOTHING.matches(LABELS)
    assert as_selector(None) is EVERYTHING and EVERYTHING.matches({})
    assert as_selector("app=web").matches_object({"metadata": {"labels": {"app": "web"}}})
    assert not as_selector({"matchLabels": {"app": "web"}}).matches_object({"metadata": {}})
