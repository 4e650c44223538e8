"""Randomized fault-injection runs of 3- and 5-node clusters; see ``sim.py`` for what is checked.

``RAYKUBE_RAFT_SIM_SEEDS=N`` sets the number of seeds of the quick run (default 500, split over the
variants). The nightly run (marked ``slow``: only with ``RAYKUBE_NIGHTLY=1``) adds 20,000 other seeds.
"""

from __future__ import annotations

import os

import pytest

from .sim import run_seed

SEEDS = int(os.environ.get("RAYKUBE_RAFT_SIM_SEEDS", "500"))
NIGHTLY_SEEDS = 20_000
STEPS = 600

VARIANTS = [
    pytest.param(3, False, id="3-nodes"),
    pytest.param(5, False, id="5-nodes"),
    pytest.param(3, True, id="3-nodes-membership"),
]
OFFSET = {(3, False): 0, (5, False): 1_000_000, (3, True): 2_000_000}


@pytest.mark.parametrize(("n", "membership"), VARIANTS)
def test_simulation(n: int, membership: bool) -> None:
    share = max(1, SEEDS // len(VARIANTS))
    for seed in range(OFFSET[(n, membership)], OFFSET[(n, membership)] + share):
        run_seed(seed, n, STEPS, membership)


@pytest.mark.slow
@pytest.mark.parametrize(("n", "membership"), VARIANTS)
def test_simulation_nightly(n: int, membership: bool) -> None:
    """Seeds the quick run never uses (it would need over 500,000 to reach them)."""
    start = OFFSET[(n, membership)] + 500_000
    for seed in range(start, start + NIGHTLY_SEEDS // len(VARIANTS)):
        run_seed(seed, n, STEPS, membership)
