"""A pytest plugin that fails the run when it leaves ``raykube-*`` entries in the system temp dir.

Code and tests that need scratch space in ``/tmp`` name it ``raykube-*`` (kubeconfig key pairs, CRI
sockets, bench data): whatever of that a run created and did not remove is reported at the end and
turns the exit status into a failure, so a leak (a private key among them, once) cannot go unseen.

Entries that existed before the run are not judged (the shared ``raykube-*.lock`` files, another
run's work). Names in ``RAYKUBE_ALLOW_LEFTOVERS`` (comma-separated ``fnmatch`` patterns) are
tolerated, for a machine where something else writes such names during the run.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
from pathlib import Path

import pytest

PATTERN = "raykube-*"
ALLOW_ENV = "RAYKUBE_ALLOW_LEFTOVERS"
_BEFORE = pytest.StashKey[frozenset[str]]()
_FOUND = pytest.StashKey[list[str]]()


def _entries() -> frozenset[str]:
    return frozenset(p.name for p in Path(tempfile.gettempdir()).glob(PATTERN))


def new_leftovers(before: frozenset[str], after: frozenset[str], allowed: list[str]) -> list[str]:
    """Names present after the run and not before, minus the allowed patterns; sorted."""
    return sorted(name for name in after - before if not any(fnmatch.fnmatch(name, pat) for pat in allowed))


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = _entries()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, None)
    if before is None or hasattr(session.config, "workerinput"):  # xdist workers: the controller checks
        return
    allowed = [p.strip() for p in os.environ.get(ALLOW_ENV, "").split(",") if p.strip()]
    found = new_leftovers(before, _entries(), allowed)
    session.config.stash[_FOUND] = found
    if found and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    found = terminalreporter.config.stash.get(_FOUND, [])
    if not found:
        return
    terminalreporter.section("raykube: files left behind", red=True)
    for name in found:
        terminalreporter.write_line(f"{Path(tempfile.gettempdir()) / name}")
    terminalreporter.write_line(
        f"the run fails: the code or test that creates them must remove them (or see {ALLOW_ENV})"
    )
