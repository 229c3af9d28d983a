"""Nothing lost: at resume the receiver's image equals the sender's for every page, under every policy
and random workloads; the mutant that drops the final dirty set must fail it. Under post-copy
(``postcopy``, ``hybrid``) the check is at the end of the degraded window: every page left on the
source at the switch-over reached the target exactly once (by a demand fault or the push), no other
page did, and the target's image equals the guest's; the mutant whose push skips a page must fail it."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pvsim.migrate.save import POLICIES, POSTCOPY_POLICIES
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
    n = int(np.count_nonzero(o.receiver != o.sender))
    if o.fetched is not None:  # post-copy: each remote page fetched exactly once, nothing else
        n += int(np.count_nonzero(o.fetched[o.remote] != 1)) + int(np.count_nonzero(o.fetched[~o.remote]))
    return n


@settings(max_examples=30, deadline=None)
@given(workloads)
def test_receiver_image_equals_sender(kw):
    o = migrate(**kw)
    assert lost(o) == 0
    assert o.guest_writes == int(o.sender.sum())


#: The policies with a final dirty set (stop-and-copy after pre-copy rounds). Post-copy and hybrid
#: switch over with pages still remote and have no final set to drop: their mutant is below.
PRECOPY_POLICIES = tuple(p for p in POLICIES if p not in POSTCOPY_POLICIES)
precopy_workloads = workloads.map(lambda k: k | {"policy": PRECOPY_POLICIES[k["seed"] % len(PRECOPY_POLICIES)]})


def test_the_precopy_policies():
    assert PRECOPY_POLICIES == ("xen", "xen-legacy", "qemu", "simgrid")


@settings(max_examples=15, deadline=None)
@given(precopy_workloads.filter(lambda k: k["mb_per_s"] > 50))
def test_the_mutant_is_caught(kw):
    honest = migrate(**kw)
    mutant = migrate(**kw, drop_final=True)
    assert honest.policy in PRECOPY_POLICIES
    assert lost(honest) == 0
    final = honest.rounds[-1]
    assert not final.live  # the stop-and-copy round, sent with the guest suspended
    # dropping the final set loses pages of it only (one written again before its live round sent it
    # already has its latest version there), and some page of a non-empty set
    assert lost(mutant) <= final.pages
    if final.pages:
        assert lost(mutant) > 0


def test_the_mutant_is_caught_on_a_busy_guest():
    kw = dict(policy="xen", ram_mib=16, rate_mbps=100, ws_mib=4, mb_per_s=200, seed=3)
    assert migrate(**kw).rounds[-1].pages > 0
    assert lost(migrate(**kw, drop_final=True)) > 0


postcopy_workloads = workloads.map(lambda k: k | {"policy": k["seed"] % 2 and "hybrid" or "postcopy",
                                                "precopy_rounds": 1 + k["seed"] % 3})


@settings(max_examples=25, deadline=None)
@given(postcopy_workloads)
def test_postcopy_every_page_fetched_once_latest_version(kw):
    o = migrate(**kw)
    assert o.policy in POSTCOPY_POLICIES and o.remote is not None
    assert lost(o) == 0
    assert o.guest_writes == int(o.sender.sum())
    assert o.pushed_pages + o.remote_faults >= int(o.remote.sum())  # in-flight faults fetch nothing new


@settings(max_examples=15, deadline=None)
@given(postcopy_workloads)
def test_the_push_mutant_is_caught(kw):
    honest, mutant = migrate(**kw), migrate(**kw, skip_push=True)
    assert lost(honest) == 0
    if honest.remote.any():  # a hybrid of an idle guest leaves nothing remote, so nothing to skip
        assert lost(mutant) > 0  # the skipped page never reaches the target (it is marked local unfetched)


def test_the_push_mutant_is_caught_on_an_idle_guest():
    kw = dict(policy="postcopy", ram_mib=4, rate_mbps=1000, ws_mib=1, mb_per_s=0, seed=5)
    assert lost(migrate(**kw)) == 0
    assert lost(migrate(**kw, skip_push=True)) == 1
