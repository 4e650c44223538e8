"""Linearizability checker for recorded client histories, after porcupine (anishathalye/porcupine).

The search is Wing & Gong's, with Lowe's memoization: walk a doubly linked list of call and return
events in time order; at a call, try to linearize that operation next (the model must accept its
recorded output); at a return whose call is still pending, backtrack. A cache of (set of linearized
operations, model state) pairs prunes every configuration already explored, which is what makes it
practical. With a ``partition`` function the history is split into independent sub-histories (for a
key-value store: one per key) and each is checked alone (P-compositionality), since a history is
linearizable iff every partition is.

What callers must provide:

* Times from one monotonic clock (ns) on the machine that recorded the history. ``call <= ret``.
* An operation whose outcome is unknown (the client timed out) has ``ret = UNKNOWN_RETURN`` and, in
  the provided models, ``output = None``. It may be linearized anywhere after its call; linearizing it
  after every other operation is the same as "it never happened", so models only need to accept it
  at any point where it could have taken effect.
* Model states must be hashable (they key the cache) and ``equal`` must agree with their hash.

The check runs in this process and thread; it is CPU-bound and exponential in the worst case, so keep
partitions to a few thousand operations with modest concurrency and pass ``timeout_s``.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = [
    "UNKNOWN_RETURN",
    "CheckResult",
    "Info",
    "Model",
    "Operation",
    "PartitionInfo",
    "check_operations",
    "check_operations_verbose",
    "kv_model",
    "register_model",
]

S = TypeVar("S")

UNKNOWN_RETURN = 2**63 - 1
"""``ret`` of an operation whose outcome is unknown: it may take effect any time after its call."""


@dataclass(frozen=True, slots=True)
class Operation:
    client_id: int
    input: Any
    call: int
    """Invocation time (ns, monotonic)."""
    output: Any
    ret: int
    """Return time, or ``UNKNOWN_RETURN``."""


@dataclass(frozen=True)
class Model(Generic[S]):
    init: Callable[[], S]
    step: Callable[[S, Any, Any], tuple[bool, S]]
    """``(state, input, output) -> (legal, new_state)``; must be pure."""
    partition: Callable[[list[Operation]], list[list[Operation]]] | None = None
    equal: Callable[[S, S], bool] = operator.eq


class CheckResult(enum.Enum):
    OK = "ok"
    ILLEGAL = "illegal"
    UNKNOWN = "unknown"  # timed out before a verdict


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    result: CheckResult
    operations: list[Operation]
    """The partition's operations, ordered by call time."""
    longest_prefix: list[Operation]
    """Longest linearization found, in linearization order (all operations when OK)."""

    @property
    def unlinearized(self) -> list[Operation]:
        """Operations outside ``longest_prefix`` by call time; the culprit is usually near the first."""
        done = {id(op) for op in self.longest_prefix}
        return [op for op in self.operations if id(op) not in done]


@dataclass(frozen=True, slots=True)
class Info:
    partitions: list[PartitionInfo] = field(default_factory=list)

    @property
    def failed(self) -> list[PartitionInfo]:
        return [p for p in self.partitions if p.result is CheckResult.ILLEGAL]

    def describe(self, limit: int = 10) -> str:
        """Human-readable account of each failed partition: the end of its longest prefix and what's stuck."""
        lines: list[str] = []
        for p in self.failed:
            lines.append(
                f"partition of {len(p.operations)} ops: linearized {len(p.longest_prefix)}, then stuck"
            )
            lines.extend(f"  ok    {op}" for op in p.longest_prefix[-limit:])
            lines.extend(f"  stuck {op}" for op in p.unlinearized[:limit])
        return "\n".join(lines) or "no failed partition"


class _Event:
    """A node of the call/return list. A call's ``match`` is its return; a return's ``match`` is None."""

    __slots__ = ("match", "next", "op_id", "prev", "value")

    def __init__(self, op_id: int, value: Any) -> None:
        self.op_id = op_id
        self.value = value
        self.match: _Event | None = None
        self.prev: _Event | None = None
        self.next: _Event | None = None


def _build_list(ops: Sequence[Operation]) -> _Event:
    """Events sorted by time, calls before returns at equal times (so touching ops overlap)."""
    keyed: list[tuple[int, int, int]] = []
    for i, op in enumerate(ops):
        if op.ret < op.call:
            raise ValueError(f"operation returns before it is called: {op}")
        keyed.append((op.call, 0, i))
        keyed.append((op.ret, 1, i))
    keyed.sort()
    head = _Event(-1, None)
    returns = [_Event(i, op.output) for i, op in enumerate(ops)]
    prev = head
    for _, kind, i in keyed:
        if kind == 0:
            node = _Event(i, ops[i].input)
            node.match = returns[i]
        else:
            node = returns[i]
        prev.next, node.prev = node, prev
        prev = node
    return head


def _lift(call: _Event) -> None:
    """Unlink a call and its return (the operation is linearized)."""
    for node in (call, call.match):
        assert node is not None and node.prev is not None
        node.prev.next = node.next
        if node.next is not None:
            node.next.prev = node.prev


def _unlift(call: _Event) -> None:
    for node in (call.match, call):
        assert node is not None and node.prev is not None
        node.prev.next = node
        if node.next is not None:
            node.next.prev = node


def _check_partition(
    model: Model[S], ops: Sequence[Operation], deadline: float | None
) -> tuple[CheckResult, list[int]]:
    """One partition: the verdict and the longest linearization found (operation indexes, in order)."""
    head = _build_list(ops)
    step, equal = model.step, model.equal
    exact_cache = equal is operator.eq
    seen: set[tuple[int, Any]] = set()
    seen_by_bits: defaultdict[int, list[S]] = defaultdict(list)
    calls: list[tuple[_Event, S]] = []  # the current partial linearization, with the state before each
    longest: list[int] = []
    state = model.init()
    linearized = 0  # bitset of linearized operation ids
    entry = head.next
    iterations = 0
    while head.next is not None:
        iterations += 1
        if deadline is not None and iterations & 0x3FF == 0 and time.monotonic() > deadline:
            return CheckResult.UNKNOWN, longest
        assert entry is not None  # the list always ends with a return, which stops the scan
        ret = entry.match
        if ret is not None:  # a call: try to linearize its operation here
            legal, new_state = step(state, entry.value, ret.value)
            if legal:
                new_bits = linearized | (1 << entry.op_id)
                if exact_cache:
                    key = (new_bits, new_state)
                    fresh = key not in seen
                    if fresh:
                        seen.add(key)
                else:
                    bucket = seen_by_bits[new_bits]
                    fresh = not any(equal(s, new_state) for s in bucket)
                    if fresh:
                        bucket.append(new_state)
                if fresh:
                    calls.append((entry, state))
                    state, linearized = new_state, new_bits
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:  # a return whose call is not linearized yet: undo the last choice
            if len(calls) > len(longest):
                longest = [c.op_id for c, _ in calls]
            if not calls:
                return CheckResult.ILLEGAL, longest
            top, state = calls.pop()
            linearized &= ~(1 << top.op_id)
            _unlift(top)
            entry = top.next
    return CheckResult.OK, [c.op_id for c, _ in calls]


def check_operations_verbose(
    model: Model[S], history: Sequence[Operation], timeout_s: float | None = None
) -> tuple[CheckResult, Info]:
    """Check every partition (even after a failure) and report each one's longest linearization.

    ILLEGAL if any partition is; otherwise UNKNOWN if any timed out (``timeout_s`` bounds the whole call).
    """
    return _check(model, history, timeout_s, stop_at_illegal=False)


def check_operations(
    model: Model[S], history: Sequence[Operation], timeout_s: float | None = None
) -> CheckResult:
    """OK if ``history`` is linearizable under ``model``, ILLEGAL if not, UNKNOWN on timeout."""
    return _check(model, history, timeout_s, stop_at_illegal=True)[0]


def _check(
    model: Model[S], history: Sequence[Operation], timeout_s: float | None, stop_at_illegal: bool
) -> tuple[CheckResult, Info]:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    ops = list(history)
    parts = model.partition(ops) if model.partition is not None else [ops]
    infos: list[PartitionInfo] = []
    for part in parts:
        part = sorted(part, key=lambda op: op.call)
        result, order = _check_partition(model, part, deadline)
        infos.append(PartitionInfo(result, part, [part[i] for i in order]))
        if result is CheckResult.ILLEGAL and stop_at_illegal:
            break
    results = {p.result for p in infos}
    if CheckResult.ILLEGAL in results:
        verdict = CheckResult.ILLEGAL
    elif CheckResult.UNKNOWN in results:
        verdict = CheckResult.UNKNOWN
    else:
        verdict = CheckResult.OK
    return verdict, Info(infos)


# ---- models -------------------------------------------------------------------------------------


def register_model() -> Model[Any]:
    """Porcupine's README register. Inputs ``("put", v)`` (output ignored) and ``("get",)`` (output
    the value read). Initial value 0. A ``get`` with output None (unknown outcome) reads nothing."""

    def step(state: Any, inp: Any, out: Any) -> tuple[bool, Any]:
        if inp[0] == "put":
            return True, inp[1]
        return out is None or out == state, state

    return Model(init=lambda: 0, step=step)


KeyState = tuple[Any, int | None, int]
"""One possible state of a key: ``(value, mod_revision, floor)``. See :func:`kv_model`."""


def _kv_step_one(s: KeyState, inp: Any, out: Any) -> list[KeyState]:
    value, mod, floor = s
    op = inp[0]
    if op == "get":
        if out is None:
            return [s]
        got, got_rev = out
        if value is None:
            return [s] if got is None and got_rev == 0 else []
        if got != value:
            return []
        if mod is None:  # first sight of a timed-out write's revision: pin it
            return [(value, got_rev, got_rev)] if got_rev > floor else []
        return [s] if got_rev == mod else []
    if op == "put":
        if out is None:
            return [(inp[2], None, floor)]
        return [(inp[2], out, out)] if out > floor else []
    if op == "cas":
        expected, new_value = inp[2], inp[3]
        matches = None if mod is None else mod == expected  # None: unknown revision, could be either
        if mod is None and expected <= floor:
            matches = False
        if out is None:
            branches: list[KeyState] = []
            if matches is not False:
                branches.append((new_value, None, floor))
            if matches is not True:
                branches.append(s)
            return branches
        succeeded, new_rev = out
        if not succeeded:
            return [s] if matches is not True else []
        if matches is False or new_rev is None or new_rev <= floor or new_rev <= expected:
            return []
        return [(new_value, new_rev, new_rev)]
    if op == "delete":
        if out is None:
            return [(None, 0, floor)]
        return [(None, 0, floor)] if out == (0 if value is None else 1) else []
    raise ValueError(f"unknown kv operation {inp!r}")


def _kv_step(states: frozenset[KeyState], inp: Any, out: Any) -> tuple[bool, frozenset[KeyState]]:
    if len(states) == 1:
        (only,) = states
        nxt = _kv_step_one(only, inp, out)
    else:
        nxt = [n for s in states for n in _kv_step_one(s, inp, out)]
    if not nxt:
        return False, states
    return True, frozenset(nxt)


def _partition_by_key(ops: list[Operation]) -> list[list[Operation]]:
    by_key: dict[Hashable, list[Operation]] = defaultdict(list)
    for op in ops:
        by_key[op.input[1]].append(op)
    return [_bound_unknown_writes(part) for part in by_key.values()]


def _bound_unknown_writes(ops: list[Operation]) -> list[Operation]:
    """Give timed-out writes the tightest outcome the rest of the key's history proves (sound only).

    Each timed-out write (ret ``UNKNOWN_RETURN``) can be linearized anywhere after its call, so k of
    them multiply the search by up to 2^k, which makes refuting a bad history hopeless. Two rewrites
    that accept exactly the same histories:

    * If a completed get returned its value and no other operation on the key writes that value, the
      write took effect before that get returned: its ``ret`` becomes that get's (earliest) ``ret``.
    * If no completed get returned its value, and no CAS or delete that could reveal it (see
      ``revealing_calls``) is called after it, it is dropped: "it never happened" explains
      everything it could have done.

    Left alone, unread timed-out writes followed by CAS/delete traffic still cost 2^k to refute: an
    illegal history with many of them may come back UNKNOWN rather than ILLEGAL.
    """
    writers: defaultdict[Any, int] = defaultdict(int)
    first_read: dict[Any, int] = {}
    for op in ops:
        kind = op.input[0]
        if kind in ("put", "cas"):
            writers[op.input[-1]] += 1
        elif kind == "get" and op.output is not None and op.ret != UNKNOWN_RETURN:
            value = op.output[0]
            first_read[value] = min(first_read.get(value, UNKNOWN_RETURN), op.ret)
    # A CAS (whatever came of it, unless it is itself an unread timed-out write) or a delete with a
    # known count can expose a write nobody read: through the revision it compares or the key's existence.
    revealing_calls = sorted(
        op.call
        for op in ops
        if (op.input[0] == "cas" and (op.output is not None or op.input[-1] in first_read))
        or (op.input[0] == "delete" and op.output is not None)
    )
    patched: list[Operation] = []
    for op in ops:
        if op.ret == UNKNOWN_RETURN and op.input[0] in ("put", "cas"):
            value = op.input[-1]
            if value in first_read and writers[value] == 1:
                op = dataclasses.replace(op, ret=max(op.call, first_read[value]))
            elif value not in first_read and not (revealing_calls and revealing_calls[-1] > op.call):
                continue
        patched.append(op)
    return patched


def kv_model() -> Model[frozenset[KeyState]]:
    """Single-key operations of our MVCC store, checked per key.

    Inputs and the outputs the store returned:

    ==================================  =============================================================
    ``("get", key)``                    ``(value, mod_revision)``; a missing key reads ``(None, 0)``
    ``("put", key, value)``             the new ``mod_revision``
    ``("cas", key, expected, value)``   ``(succeeded, new_mod_revision or None)``; succeeds iff
                                        ``expected`` is the key's ``mod_revision`` (0 if missing)
    ``("delete", key)``                 ``deleted_count`` (1 if the key existed, else 0)
    any, outcome unknown                ``None``, with ``ret = UNKNOWN_RETURN``
    ==================================  =============================================================

    Put values must not be None. Revisions are global across keys, so a per-key check cannot demand
    ``rev + 1``; it demands that every new revision be greater than any revision this key has shown
    (its ``floor``), and that reads return exactly the current value and ``mod_revision``.

    A key's state is ``(value, mod_revision, floor)``; ``mod_revision`` None means "written by an
    operation whose outcome is unknown, so its revision is some number > floor" and a later read pins
    it. The model state is the frozenset of possible key states (a timed-out CAS against an unknown
    revision may or may not have succeeded), and an operation is legal if any possibility allows it.
    A failed CAS against an unknown revision is always accepted (the check is sound, not complete
    there).
    """
    return Model(init=lambda: frozenset({(None, 0, 0)}), step=_kv_step, partition=_partition_by_key)
