"""Status helpers and CycleState."""

from __future__ import annotations

import pytest

from cluster.scheduler.framework import SUCCESS, Code, CycleState, Status


@pytest.mark.parametrize(
    ("status", "success", "skip", "rejected"),
    [
        pytest.param(SUCCESS, True, False, False, id="success"),
        pytest.param(Status.unschedulable("Insufficient cpu"), False, False, True, id="unschedulable"),
        pytest.param(Status.unschedulable("x", resolvable=False), False, False, True, id="unresolvable"),
        pytest.param(Status.skip(), False, True, False, id="skip"),
        pytest.param(Status.error("boom"), False, False, False, id="error"),
        pytest.param(Status.wait(), False, False, False, id="wait"),
        pytest.param(Status(Code.PENDING), False, False, False, id="pending"),
    ],
)
def test_status_predicates(status: Status, success: bool, skip: bool, rejected: bool) -> None:
    assert (status.is_success(), status.is_skip(), status.is_rejected()) == (success, skip, rejected)


@pytest.mark.parametrize(
    ("status", "code", "reasons"),
    [
        pytest.param(Status.unschedulable("a", "b"), Code.UNSCHEDULABLE, ("a", "b"), id="resolvable"),
        pytest.param(
            Status.unschedulable("a", resolvable=False), Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ("a",), id="no"
        ),
        pytest.param(Status.error("e"), Code.ERROR, ("e",), id="error"),
    ],
)
def test_status_constructors(status: Status, code: Code, reasons: tuple[str, ...]) -> None:
    assert status.code == code
    assert status.reasons == reasons


def test_status_message_and_plugin() -> None:
    status = Status.unschedulable("a", "b").with_plugin("P")
    assert status.message() == "a, b"
    assert status.plugin == "P"
    assert status.with_plugin("Q").plugin == "P"


class _Counter:
    def __init__(self, n: int) -> None:
        self.n = n

    def clone(self) -> _Counter:
        return _Counter(self.n)


def test_cycle_state_read_write_clone() -> None:
    state = CycleState()
    with pytest.raises(KeyError):
        state.read("missing")
    state.write("counter", _Counter(1))
    state.write("list", [1])
    copy = state.clone()
    counter = copy.read("counter")
    assert isinstance(counter, _Counter)
    counter.n = 5
    items = copy.read("list")
    assert isinstance(items, list)
    items.append(2)
    original = state.read("counter")
    assert isinstance(original, _Counter) and original.n == 1
    assert state.read("list") == [1]
    assert "counter" in state and "nope" not in state
