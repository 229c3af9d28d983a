"""Isolation under a hostile PV domain: >= 100,000 random mmu_update / mmuext_op /
update_va_mapping calls, with the frame table audited after every call."""

import pytest
from hostile import World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pvsim.core.engine import rng_for

# four worlds x 25,000 calls: plain, guest linear page tables on, continuations, small domain
CONFIGS = [dict(), dict(linear_pt=True), dict(preempt_every=2), dict(attacker_pages=24, linear_pt=True)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["plain", "linear_pt", "preempt", "small_linear"])
def test_hundred_thousand_hostile_calls(cfg):
    w = World(**cfg)
    rng = rng_for(2026, f"hostile/{sorted(cfg.items())}")
    outcomes = {}
    for _ in range(25_000):
        call = w.random_call(rng)
        rc = w.step(call)  # audits the frame table, ownership, victim state and errno
        outcomes[(call[0], rc)] = outcomes.get((call[0], rc), 0) + 1
    # the driver must really exercise both successes and refusals of every hypercall
    for name in ("mmu_update", "mmuext_op", "update_va_mapping"):
        assert outcomes.get((name, 0), 0) > 50, outcomes
        assert sum(v for (n, rc), v in outcomes.items() if n == name and rc < 0) > 50, outcomes
    assert w.mm.pinned.sum() >= 1


call_ints = st.lists(st.integers(0, (1 << 30) - 1), min_size=World.NR_INTS, max_size=World.NR_INTS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(call_ints, min_size=1, max_size=40), st.booleans())
def test_hostile_sequences_hypothesis(seq, linear):
    w = World(linear_pt=linear)
    for ints in seq:
        w.step(w.decode(ints))
