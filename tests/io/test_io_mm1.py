"""Validation against theory: Poisson arrivals into blkfront, blkback + an exponential server ~ M/M/1."""

import numpy as np
from io_mm1 import run_mm1

from pvsim.profile import load_profile


def test_blkback_with_exponential_service_matches_mm1_mean_response():
    p = load_profile("modern")
    lam, mu = 300.0, 1000.0  # per second: rho = 0.3
    samples = []
    for seed in (1, 2, 3):
        resp, blk, sys = run_mm1(p, lam, 1e9 / mu, 8000, seed=seed)
        assert len(resp) == 8000  # nothing lost
        assert blk.error is None and not blk.inflight_ids
        samples.extend(resp)
    w_sim = np.mean(samples) / 1e9
    w_theory = 1.0 / (mu - lam)
    assert abs(w_sim - w_theory) / w_theory < 0.05, (w_sim, w_theory)
