"""Indexed Jobs: completion-index intervals, pending indexes, and what an index puts on a pod."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.job.indexed import (
    COMPLETION_INDEX_ANNOTATION,
    completion_index,
    format_intervals,
    parse_intervals,
    pending_indexes,
    with_completion_index,
)


@pytest.mark.parametrize(
    ("indexes", "text"),
    [
        pytest.param(set(), "", id="empty"),
        pytest.param({3}, "3", id="single"),
        pytest.param({0, 1, 2, 5}, "0-2,5", id="range-and-single"),
        pytest.param({0, 2, 4}, "0,2,4", id="gaps"),
        pytest.param({7, 8, 9, 1, 2}, "1-2,7-9", id="unsorted-input"),
    ],
)
def test_intervals_round_trip(indexes: set[int], text: str) -> None:
    assert format_intervals(indexes) == text
    assert parse_intervals(text, 100) == indexes


@pytest.mark.parametrize(
    ("text", "completions", "expected"),
    [
        pytest.param("0-5", 3, {0, 1, 2}, id="clipped-to-completions"),
        pytest.param("x,1,2-", 5, {1}, id="junk-skipped"),
        pytest.param(None, 5, set(), id="missing"),
    ],
)
def test_parse_intervals_edges(text: str | None, completions: int, expected: set[int]) -> None:
    assert parse_intervals(text, completions) == expected


@pytest.mark.parametrize(
    ("completions", "taken", "count", "expected"),
    [
        pytest.param(5, set(), 2, [0, 1], id="lowest-first"),
        pytest.param(5, {0, 2}, 3, [1, 3, 4], id="skips-taken"),
        pytest.param(3, {0, 1, 2}, 2, [], id="none-left"),
        pytest.param(4, {1}, 10, [0, 2, 3], id="count-above-left"),
    ],
)
def test_pending_indexes(completions: int, taken: set[int], count: int, expected: list[int]) -> None:
    assert pending_indexes(completions, taken, count) == expected


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        pytest.param("2", 2, id="valid"),
        pytest.param("3", None, id="out-of-range"),
        pytest.param("-1", None, id="negative"),
        pytest.param("a", None, id="not-a-number"),
        pytest.param(None, None, id="missing"),
    ],
)
def test_completion_index(annotation: str | None, expected: int | None) -> None:
    annotations = {} if annotation is None else {COMPLETION_INDEX_ANNOTATION: annotation}
    assert completion_index({"metadata": {"annotations": annotations}}, 3) == expected


def test_with_completion_index_sets_annotation_label_env_and_hostname() -> None:
    pod: dict[str, Any] = {
        "metadata": {"labels": {"app": "x"}},
        "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a", "env": [{"name": "KEEP", "value": "1"}]}, {"name": "b"}],
        },
    }
    out = with_completion_index(pod, "work", 4)
    assert out["metadata"]["annotations"][COMPLETION_INDEX_ANNOTATION] == "4"
    assert out["metadata"]["labels"] == {"app": "x", COMPLETION_INDEX_ANNOTATION: "4"}
    assert out["spec"]["hostname"] == "work-4"
    for container in [*out["spec"]["initContainers"], *out["spec"]["containers"]]:
        names = [v["name"] for v in container["env"]]
        assert "JOB_COMPLETION_INDEX" in names
        ref = next(v for v in container["env"] if v["name"] == "JOB_COMPLETION_INDEX")["valueFrom"]
        assert ref["fieldRef"]["fieldPath"] == f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
    assert out["spec"]["containers"][0]["env"][0] == {"name": "KEEP", "value": "1"}
    assert "env" not in pod["spec"]["containers"][1], "the input is not mutated"


def test_with_completion_index_keeps_a_template_hostname() -> None:
    out = with_completion_index({"spec": {"hostname": "mine", "containers": []}}, "work", 1)
    assert out["spec"]["hostname"] == "mine"
