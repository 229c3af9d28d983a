"""Nothing lost: at resume the receiver's image equals the sender's for every page, under every policy
and random workloads; the mutant that drops the final dirty set must fail it."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pvsim.migrate.save import POLICIES
from tests.migrate.helpers import migrate

workloads = st.fixed_dictionaries({
    "policy": st.sampled_from(POLICIES),
    "ram_mib": st.integers(4, 24),
    "rate_mbps": st.sampled_from([50.0, 200.0, 1000.0]),
    "ws_mib": st.integers(1, 4),
    "mb_per_s": st.floats(0, 300),
    "pattern": st.sampled_from(["uniform", "hot", "sequential"]),
    "seed": st.integers(0, 2**32),
    "free_frac": st.sampled_from([0.0, 0.3]),
})


def lost(o) -> int:
    return int(np.count_nonzero(o.receiver != o.sender))


@settings(max_examples=30, deadline=None)
@given(workloads)
def test_receiver_image_equals_sender(kw):
    o = migrate(**kw)
    assert lost(o) == 0
    assert o.guest_writes == int(o.sender.sum())


@settings(max_examples=15, deadline=None)
@given(workloads.filter(lambda k: k["mb_per_s"] > 50))
def test_the_mutant_is_caught(kw):
    honest = migrate(**kw)
    mutant = migrate(**kw, drop_final=True)
    assert lost(honest) == 0
    if honest.rounds[-1].pages:  # a non-empty final set: dropping it must lose exactly those pages
        assert lost(mutant) > 0


def test_the_mutant_is_caught_on_a_busy_guest():
    kw = dict(policy="xen", ram_mib=16, rate_mbps=100, ws_mib=4, mb_per_s=200, seed=3)
    assert migrate(**kw).rounds[-1].pages > 0
    assert lost(migrate(**kw, drop_final=True)) > 0
