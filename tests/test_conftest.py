"""The suite-wide hooks (tests/conftest.py) on small throwaway suites: what fails, skips, is printed."""

from __future__ import annotations

import pytest

from tests import capabilities

SUITE = """
import pytest
from tests.capabilities import needs, require

@needs("kubectl", "kubectl.1.33 is not installed")
def test_marked():
    pass

def test_required():
    require("isolation", "the probe fell back to plain mode")

@needs("etcd", None)
def test_present():
    pass

@pytest.mark.slow
def test_nightly():
    pass
"""


@pytest.mark.parametrize(
    ("allow", "nightly", "outcomes", "lines"),
    [
        pytest.param(
            "",
            "",
            {"passed": 1, "failed": 1, "errors": 1, "deselected": 1},
            ["*missing kubectl*kubectl.1.33 is not installed*RAYKUBE_ALLOW_MISSING=kubectl*",
             "*missing isolation*fell back to plain*",
             "deselected: 1 nightly-only tests (set RAYKUBE_NIGHTLY=1)"],
            id="missing-fails-slow-deselected",
        ),
        pytest.param(
            "kubectl,isolation",
            "",
            {"passed": 1, "skipped": 2, "deselected": 1},
            ["RAYKUBE_ALLOW_MISSING=isolation,kubectl",
             "  opted out: isolation: 1 tests skipped*",
             "  opted out: kubectl: 1 tests skipped*"],
            id="opted-out-skips-and-is-listed",
        ),
        pytest.param(
            "kubectl",
            "1",
            {"passed": 2, "failed": 1, "skipped": 1},
            ["  opted out: kubectl: 1 tests skipped*"],
            id="nightly-runs-slow-opt-out-is-per-capability",
        ),
    ],
)  # fmt: skip
def test_missing_capabilities_and_nightly(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    allow: str,
    nightly: str,
    outcomes: dict[str, int],
    lines: list[str],
) -> None:
    monkeypatch.setenv(capabilities.ENV, allow)
    monkeypatch.setenv("RAYKUBE_NIGHTLY", nightly)
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makeini("[pytest]\nmarkers =\n    slow: nightly\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(**outcomes)
    result.stdout.fnmatch_lines(lines)


def test_unknown_opt_out_is_a_usage_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(capabilities.ENV, "kubctl")
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makepyfile(test_suite="def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown capability kubctl*"])
