"""Where the autoscaler's settings come from: `raykube up`'s flags, else the environment, else defaults."""

from __future__ import annotations

import pytest

from cluster.autoscaler.ray_autoscaler import (
    DEFAULT_UNNEEDED,
    AutoscalingOptions,
    AutoscalingSettings,
    autoscaling_settings,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAYKUBE_AUTOSCALE", raising=False)
    monkeypatch.delenv("RAYKUBE_SCALE_DOWN_UNNEEDED", raising=False)


def test_nothing_given_leaves_the_choice_to_where_the_loop_runs() -> None:
    assert autoscaling_settings() == AutoscalingSettings(None, None)
    assert AutoscalingOptions.from_env() == AutoscalingOptions(enabled=None, unneeded=DEFAULT_UNNEEDED)


def test_the_environment_fills_what_was_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYKUBE_AUTOSCALE", "0")
    monkeypatch.setenv("RAYKUBE_SCALE_DOWN_UNNEEDED", "30")
    assert autoscaling_settings() == AutoscalingSettings(False, 30.0)
    assert autoscaling_settings(True, 5.0) == AutoscalingSettings(True, 5.0)
    assert AutoscalingOptions.from_env(None, 45.0) == AutoscalingOptions(enabled=False, unneeded=45.0)


@pytest.mark.parametrize(
    ("value", "enabled"), [("1", True), ("true", True), ("on", True), ("0", False), ("no", False)]
)
def test_autoscale_flag_values(monkeypatch: pytest.MonkeyPatch, value: str, enabled: bool) -> None:
    monkeypatch.setenv("RAYKUBE_AUTOSCALE", value)
    assert autoscaling_settings().enabled is enabled
