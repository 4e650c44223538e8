from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import Code
from cluster.scheduler.plugins import node_affinity
from cluster.scheduler.plugins.node_affinity import InvalidRequirement, match_label_requirement
from tests.cluster.scheduler.plugins.node_pod_builders import info, node, pod

Obj = dict[str, Any]
LABELS = {"zone": "a", "disk": "ssd", "cores": "8"}
POD_REASON = ("node(s) didn't match Pod's node affinity/selector",)
ENFORCED_REASON = ("node(s) didn't match scheduler-enforced node affinity",)


def req(key: str, operator: str, *values: str) -> Obj:
    out: Obj = {"key": key, "operator": operator}
    if values:
        out["values"] = list(values)
    return out


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        pytest.param(req("zone", "In", "a", "b"), True, id="in"),
        pytest.param(req("zone", "In", "b"), False, id="in-other-value"),
        pytest.param(req("rack", "In", "a"), False, id="in-missing-label"),
        pytest.param(req("zone", "NotIn", "b"), True, id="not-in"),
        pytest.param(req("zone", "NotIn", "a"), False, id="not-in-listed"),
        pytest.param(req("rack", "NotIn", "a"), True, id="not-in-missing-label"),
        pytest.param(req("disk", "Exists"), True, id="exists"),
        pytest.param(req("rack", "Exists"), False, id="exists-missing"),
        pytest.param(req("rack", "DoesNotExist"), True, id="does-not-exist"),
        pytest.param(req("disk", "DoesNotExist"), False, id="does-not-exist-present"),
        pytest.param(req("cores", "Gt", "4"), True, id="gt"),
        pytest.param(req("cores", "Gt", "8"), False, id="gt-equal"),
        pytest.param(req("cores", "Lt", "16"), True, id="lt"),
        pytest.param(req("zone", "Lt", "16"), False, id="lt-non-integer-label"),
        pytest.param(req("rack", "Gt", "1"), False, id="gt-missing-label"),
    ],
)
def test_match_label_requirement(requirement: Obj, expected: bool) -> None:
    assert match_label_requirement(requirement, LABELS) is expected


@pytest.mark.parametrize(
    "requirement",
    [
        pytest.param(req("zone", "In"), id="in-without-values"),
        pytest.param(req("zone", "Exists", "a"), id="exists-with-values"),
        pytest.param(req("cores", "Gt", "a"), id="gt-non-integer"),
        pytest.param(req("cores", "Gt", "1", "2"), id="gt-two-values"),
        pytest.param(req("zone", "Like", "a"), id="unknown-operator"),
    ],
)
def test_invalid_label_requirement(requirement: Obj) -> None:
    with pytest.raises(InvalidRequirement):
        match_label_requirement(requirement, LABELS)


def required(*terms: Obj) -> Obj:
    return {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}
    }


def term(*expressions: Obj, fields: list[Obj] | None = None) -> Obj:
    out: Obj = {"matchExpressions": list(expressions)}
    if fields is not None:
        out["matchFields"] = fields
    return out


@pytest.mark.parametrize(
    ("selector", "affinity", "code"),
    [
        pytest.param(None, None, Code.SUCCESS, id="nothing-required"),
        pytest.param({"zone": "a"}, None, Code.SUCCESS, id="selector-matches"),
        pytest.param(
            {"zone": "a", "disk": "hdd"}, None, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, id="selector-partial"
        ),
        pytest.param(None, required(term(req("zone", "In", "a"))), Code.SUCCESS, id="required-term"),
        pytest.param(
            None,
            required(term(req("zone", "In", "b")), term(req("disk", "Exists"))),
            Code.SUCCESS,
            id="terms-are-ored",
        ),
        pytest.param(
            None,
            required(term(req("zone", "In", "a"), req("disk", "In", "hdd"))),
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            id="expressions-are-anded",
        ),
        pytest.param(
            None, required(term()), Code.UNSCHEDULABLE_AND_UNRESOLVABLE, id="empty-term-matches-nothing"
        ),
        pytest.param(None, required(), Code.UNSCHEDULABLE_AND_UNRESOLVABLE, id="no-terms-match-nothing"),
        pytest.param(
            None,
            required(term(req("zone", "In")), term(req("disk", "Exists"))),
            Code.SUCCESS,
            id="invalid-term-skipped",
        ),
        pytest.param(
            None,
            required(term(fields=[req("metadata.name", "In", "n1")])),
            Code.SUCCESS,
            id="match-fields-name",
        ),
        pytest.param(
            None,
            required(term(fields=[req("metadata.name", "NotIn", "n1")])),
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            id="match-fields-not-in",
        ),
        pytest.param(
            None,
            required(term(fields=[req("metadata.name", "In", "n1", "n2")])),
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            id="match-fields-needs-one-value",
        ),
        pytest.param(
            {"zone": "b"},
            required(term(req("zone", "Exists"))),
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            id="selector-and-affinity-both-needed",
        ),
    ],
)
def test_filter(selector: dict[str, str] | None, affinity: Obj | None, code: Code) -> None:
    plugin = node_affinity.new({}, object())
    incoming = pod(node_selector=selector, affinity=affinity)
    node_info = info(node("n1", labels=LABELS))
    state = CycleState()
    pre = plugin.pre_filter(state, incoming, [node_info])
    assert pre.code == (Code.SKIP if selector is None and affinity is None else Code.SUCCESS)
    status = plugin.filter(state, incoming, node_info)
    assert status.code == code
    assert status.reasons == (() if code == Code.SUCCESS else POD_REASON)


@pytest.mark.parametrize(
    ("added_terms", "selector", "reasons"),
    [
        pytest.param([term(req("zone", "In", "a"))], None, (), id="added-matches"),
        pytest.param([term(req("zone", "In", "b"))], None, ENFORCED_REASON, id="added-mismatch"),
        pytest.param(
            [term(req("zone", "In", "b"))], {"zone": "b"}, ENFORCED_REASON, id="added-checked-first"
        ),
        pytest.param([term(req("zone", "In", "a"))], {"zone": "b"}, POD_REASON, id="then-pod"),
    ],
)
def test_filter_added_affinity(
    added_terms: list[Obj], selector: dict[str, str] | None, reasons: tuple[str, ...]
) -> None:
    args = {"addedAffinity": required(*added_terms)["nodeAffinity"]}
    plugin = node_affinity.new(args, object())
    incoming = pod(node_selector=selector)
    state = CycleState()
    node_info = info(node("n1", labels=LABELS))
    assert plugin.pre_filter(state, incoming, [node_info]).is_success()
    assert plugin.filter(state, incoming, node_info).reasons == reasons


def preferred(*weighted: tuple[int, Obj]) -> Obj:
    terms = [{"weight": w, "preference": t} for w, t in weighted]
    return {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": terms}}


NODES = {"a": {"zone": "a", "disk": "ssd"}, "b": {"zone": "b", "disk": "ssd"}, "c": {"zone": "c"}}


@pytest.mark.parametrize(
    ("affinity", "args", "expected"),
    [
        pytest.param(
            preferred((5, term(req("zone", "In", "a"))), (3, term(req("disk", "Exists")))),
            {},
            {"a": 100, "b": 37, "c": 0},
            id="weights-summed-and-normalized",
        ),
        pytest.param(
            preferred((0, term(req("zone", "In", "a"))), (3, term(req("disk", "Exists")))),
            {},
            {"a": 100, "b": 100, "c": 0},
            id="zero-weight-ignored",
        ),
        pytest.param(
            preferred((2, term(req("zone", "In", "x")))), {}, {"a": 0, "b": 0, "c": 0}, id="no-match-all-zero"
        ),
        pytest.param(
            preferred((4, term())), {}, {"a": 100, "b": 100, "c": 100}, id="empty-preference-matches-all"
        ),
        pytest.param(
            preferred((1, term(req("zone", "In", "c")))),
            {"addedAffinity": preferred((3, term(req("disk", "Exists"))))["nodeAffinity"]},
            {"a": 100, "b": 100, "c": 33},
            id="added-preferred-terms-count",
        ),
        pytest.param(
            preferred((2, term(fields=[req("metadata.name", "In", "b")]))),
            {},
            {"a": 0, "b": 100, "c": 0},
            id="preferred-match-fields",
        ),
    ],
)
def test_score_and_normalize(affinity: Obj, args: Obj, expected: dict[str, int]) -> None:
    plugin = node_affinity.new(args, object())
    infos = [info(node(name, labels=labels)) for name, labels in NODES.items()]
    incoming = pod(affinity=affinity)
    state = CycleState()
    assert plugin.pre_score(state, incoming, infos).is_success()
    scores = {i.name: plugin.score(state, incoming, i)[0] for i in infos}
    assert plugin.normalize_score(state, incoming, scores).is_success()
    assert scores == expected


@pytest.mark.parametrize(
    ("affinity", "code"),
    [
        pytest.param(None, Code.SKIP, id="no-affinity"),
        pytest.param(required(term(req("zone", "Exists"))), Code.SKIP, id="required-only"),
        pytest.param(preferred((1, term(req("zone", "Exists")))), Code.SUCCESS, id="preferred"),
    ],
)
def test_pre_score_skips_without_preferred_terms(affinity: Obj | None, code: Code) -> None:
    plugin = node_affinity.new({}, object())
    assert plugin.pre_score(CycleState(), pod(affinity=affinity), []).code == code
