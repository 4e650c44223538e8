"""Suite-wide hooks: missing capabilities fail (or are opted out, listed), nightly-only tests.

* ``@needs(capability, missing)`` marks (tests/capabilities.py) are checked at setup: a missing
  capability fails the test unless ``RAYKUBE_ALLOW_MISSING`` names it; the summary lists what was
  opted out, so a run that skipped half the suite cannot pass for a full one.
* ``@pytest.mark.slow`` tests are nightly-sized: deselected unless ``RAYKUBE_NIGHTLY=1``, and the
  summary says how many were left out.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from tests import capabilities

# pytester: tests/test_conftest.py runs these hooks on small suites; leftovers: the run fails when it
# leaves raykube-* files in the temp dir (a kubeconfig's private key was once among them).
pytest_plugins = ["pytester", "tests.leftovers"]

NIGHTLY_ENV = "RAYKUBE_NIGHTLY"
_NIGHTLY_DESELECTED = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{capabilities.MARK}(capability, missing): fails when missing is set; see tests/capabilities.py",
    )
    try:
        capabilities.allowed_missing()
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def nightly() -> bool:
    return os.environ.get(NIGHTLY_ENV, "") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if nightly():
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        keep = [item for item in items if item.get_closest_marker("slow") is None]
        config.hook.pytest_deselected(items=slow)
        items[:] = keep
    config.stash[_NIGHTLY_DESELECTED] = len(slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers(capabilities.MARK):
        capabilities.require(*mark.args)


def _opted_out(terminalreporter: pytest.TerminalReporter) -> Counter[str]:
    """Opted-out skips by capability, from the skip reasons ``require`` wrote."""
    out: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        if capabilities.OPTED_OUT in reason:
            out[reason.split(f"{capabilities.OPTED_OUT} (", 1)[1].split(")", 1)[0]] += 1
    return out


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    allowed = capabilities.allowed_missing()
    opted = _opted_out(terminalreporter)
    deselected = terminalreporter.config.stash.get(_NIGHTLY_DESELECTED, 0)
    if not (allowed or opted or deselected):
        return
    terminalreporter.section("raykube: what this run did not test")
    if allowed:
        terminalreporter.write_line(f"{capabilities.ENV}={','.join(sorted(allowed))}")
        for name in sorted(allowed):
            terminalreporter.write_line(
                f"  opted out: {name}: {opted.get(name, 0)} tests skipped ({capabilities.CAPABILITIES[name]})"
            )
    if deselected:
        terminalreporter.write_line(f"deselected: {deselected} nightly-only tests (set {NIGHTLY_ENV}=1)")
