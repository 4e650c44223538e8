"""Randomized fault-injection runs of 3- and 5-node clusters; see ``sim.py`` for what is checked.

``RAYKUBE_RAFT_SIM_SEEDS=N`` sets the number of seeds (default 500, split over the variants).
"""

from __future__ import annotations

import os

import pytest

from .sim import run_seed

SEEDS = int(os.environ.get("RAYKUBE_RAFT_SIM_SEEDS", "500"))
STEPS = 600

VARIANTS = [
    pytest.param(3, False, id="3-nodes"),
    pytest.param(5, False, id="5-nodes"),
    pytest.param(3, True, id="3-nodes-membership"),
]


@pytest.mark.parametrize(("n", "membership"), VARIANTS)
def test_simulation(n: int, membership: bool) -> None:
    share = max(1, SEEDS // len(VARIANTS))
    offset = {(3, False): 0, (5, False): 1_000_000, (3, True): 2_000_000}[(n, membership)]
    for seed in range(offset, offset + share):
        run_seed(seed, n, STEPS, membership)
