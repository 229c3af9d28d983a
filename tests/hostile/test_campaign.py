"""The wide hostile campaign (tests/hostile/campaign.py). The suite runs a seeded 5,000-call
instance; ``make campaign`` runs the full 100,000 calls (``PVSIM_CAMPAIGN_CALLS``)."""

from __future__ import annotations

import os

from campaign import run_campaign

CALLS = int(os.environ.get("PVSIM_CAMPAIGN_CALLS", "5000"))


def test_hostile_campaign_checks_the_exact_errno_of_most_calls():
    s = run_campaign(CALLS)  # invariants are asserted after every call
    frac = s.exact / s.calls
    print(f"\nhostile campaign: {s.calls} calls, exact result checked for {s.exact} ({frac:.1%}); "
          + ", ".join(f"{k} {x}/{c}" for k, (c, x) in sorted(s.by_family.items())))
    assert s.calls == CALLS
    assert frac >= 0.8, s.by_family
    assert set(s.by_family) == {"mm", "dom0_map", "evtchn", "gnttab", "memory_op", "vcpu_op", "multicall"}
