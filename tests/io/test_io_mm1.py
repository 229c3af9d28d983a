"""Validation against theory: Poisson arrivals into blkfront, blkback in dom0 in front of an
exponential server ~ M/M/1 (an open-loop workload through the one pipeline)."""

import numpy as np
from io_helpers import build_io

ARRIVALS = [{"name": "mm1", "metric": "ops_per_s", "arrivals": {"rate_per_s": 300},
             "steps": [{"disk": {"op": "read", "bytes": 4096, "pattern": "sequential", "span_bytes": 4096}}]}]


def test_blkback_with_exponential_service_matches_mm1_mean_response():
    lam, mu = 300.0, 1000.0  # per second: rho = 0.3
    samples = []
    for seed in (1, 2, 3):
        system = build_io("mm1", "pv", ms=30_000, seed=seed, workloads=ARRIVALS, warmup=False,
                          disk={"kind": "exp", "mean_service_ns": 1e9 / mu}, options={"ring_pages": 4})
        system.advance(int(8000 / lam * 1e9 * 1.2) + 100_000_000)
        g = system.domain("guest")
        blk = g.blk
        assert g.os.units == len(g.os.latencies_us) >= 8000  # every arrival completed: nothing lost
        assert blk.error is None
        samples.extend(g.os.latencies_us[:8000])
    w_sim = np.mean(samples) / 1e6
    w_theory = 1.0 / (mu - lam)
    assert abs(w_sim - w_theory) / w_theory < 0.05, (w_sim, w_theory)
