"""Without nginx on the head node the Ingress step starts nothing and says why (no Ray needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster import addons


def test_ingress_step_without_nginx_says_why_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(addons, "nginx_binary", lambda: None)
    monkeypatch.setattr(addons, "_on_this_node", lambda *a: pytest.fail("an actor was started"))
    step = addons.deploy_ingress(tmp_path, "ns")
    assert (step.http, step.https) == ("", "")
    assert "nginx not found" in step.missing and "nginx-light" in step.missing
