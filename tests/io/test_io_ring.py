"""Ring protocol (ring.h) properties, the final-check mutant, sizes and the backend overflow checks."""

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from io_ring_harness import run_actions

from pvsim.io import ring
from pvsim.io.ring import BackRing, FrontRing, SharedRing, u32


class MutantBackRing(BackRing):
    """Deliberately broken: arms req_event but skips final-check's re-check."""

    def final_check_for_requests(self, between=None) -> int:
        work = self.has_unconsumed_requests()
        if work:
            return work
        if between is not None:
            between()
        self.sring.req_event = u32(self.req_cons + 1)
        return 0


class MutantFrontRing(FrontRing):
    def final_check_for_responses(self, between=None) -> int:
        work = self.has_unconsumed_responses()
        if work:
            return work
        if between is not None:
            between()
        self.sring.rsp_event = u32(self.rsp_cons + 1)
        return 0


action = st.one_of(
    st.tuples(st.just("push"), st.integers(1, 12)),
    st.tuples(st.just("consume"), st.integers(1, 12)),
    st.tuples(st.just("respond"), st.integers(1, 12)),
    st.tuples(st.just("back_idle"), st.integers(0, 3)),
    st.tuples(st.just("back_wake"), st.just(0)),
    st.tuples(st.just("front_rsp"), st.integers(1, 12)),
    st.tuples(st.just("front_idle"), st.integers(0, 3)),
    st.tuples(st.just("front_wake"), st.just(0)),
)
starts = st.sampled_from([0, 1, 2**31, 2**32 - 5, 2**32 - 1])


# The two final-check races, reached on purpose on every run (not by the search's luck): a request
# pushed inside the backend's final-check window, a response inside the frontend's; at a wrapping
# start index too. A final check without its re-check (a mutant of ring.py) fails these.
BACK_RACE = [("push", 1), ("back_wake", 0), ("consume", 1), ("back_idle", 1)]
FRONT_RACE = [("push", 2), ("back_wake", 0), ("consume", 2), ("respond", 1), ("front_wake", 0),
              ("front_rsp", 1), ("front_idle", 1)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(action, max_size=60), starts, st.sampled_from([1, 2, 8, 32]))
@example(BACK_RACE, 0, 8)
@example(BACK_RACE, 2**32 - 1, 2)
@example(FRONT_RACE, 0, 8)
@example(FRONT_RACE, 2**32 - 1, 2)
def test_ring_no_loss_no_dup_no_lost_wakeup(actions, start, size):
    h = run_actions(actions, size=size, start=start)
    assert h.violations == []
    assert sorted(h.done) == sorted(h.issued)
    # indices stay within the ring's window
    assert u32(h.front.req_prod_pvt - h.front.rsp_cons) <= size
    assert u32(h.s.rsp_prod - h.front.rsp_cons) <= size


def test_mutant_backend_loses_a_wakeup_on_a_known_interleaving():
    acts = [("push", 1), ("back_wake", 0), ("consume", 1), ("back_idle", 1)]
    assert run_actions(acts, size=8).violations == []
    bad = run_actions(acts, size=8, back_cls=MutantBackRing)
    assert any("backend asleep" in v for v in bad.violations)
    assert any("never completed" in v for v in bad.violations)


def test_mutant_frontend_loses_a_wakeup_on_a_known_interleaving():
    acts = [("push", 2), ("back_wake", 0), ("consume", 2), ("respond", 1), ("front_wake", 0),
            ("front_rsp", 1), ("front_idle", 1)]
    assert run_actions(acts, size=8).violations == []
    bad = run_actions(acts, size=8, front_cls=MutantFrontRing)
    assert any("frontend asleep" in v for v in bad.violations)


def test_property_catches_the_mutants():
    from hypothesis import find

    # the frontend race needs a response pushed inside the frontend's final-check window, so its
    # search uses the actions that matter there (each still an arbitrary interleaving)
    front_actions = st.one_of(
        st.tuples(st.just("push"), st.integers(1, 4)),
        st.tuples(st.just("back_wake"), st.just(0)),
        st.tuples(st.just("consume"), st.integers(1, 4)),
        st.tuples(st.just("respond"), st.integers(1, 4)),
        st.tuples(st.just("front_wake"), st.just(0)),
        st.tuples(st.just("front_rsp"), st.integers(1, 4)),
        st.tuples(st.just("front_idle"), st.integers(1, 3)),
    )
    for strat, kw in ((action, {"back_cls": MutantBackRing}), (front_actions, {"front_cls": MutantFrontRing})):
        found = find(
            st.lists(strat, max_size=30),
            lambda acts, kw=kw: bool(run_actions(acts, size=8, **kw).violations),
            settings=settings(max_examples=5000, database=None, deadline=None, derandomize=True,
                              phases=[Phase.generate]),
        )
        assert found  # hypothesis found an interleaving that breaks the mutant


def test_sizes_as_xen_computes_them():
    assert ring.BLKIF_RING_SIZE == 32
    assert ring.NET_TX_RING_SIZE == 256 and ring.NET_RX_RING_SIZE == 256
    assert ring.ring_size(ring.BLKIF_SLOT_BYTES, pages=2) == 64
    assert ring.ring_size(ring.BLKIF_SLOT_BYTES, pages=16) == 512


def test_shared_ring_init_and_notify_rule():
    s = SharedRing(32)
    assert (s.req_prod, s.req_event, s.rsp_prod, s.rsp_event) == (0, 1, 0, 1)
    f, b = FrontRing(s), BackRing(s)
    f.put_request("a")
    assert f.push_requests_and_check_notify()  # first message always notifies
    f.put_request("b")
    assert not f.push_requests_and_check_notify()  # req_event 1 not in (1, 2]
    assert b.has_unconsumed_requests() == 2
    b.get_request(), b.get_request()
    assert b.final_check_for_requests() == 0 and s.req_event == 3
    # custom batching: notify only when the push crosses cons + 4
    s.req_event = u32(b.req_cons + 4)
    notes = []
    for i in range(5):
        f.put_request(i)
        notes.append(f.push_requests_and_check_notify())
    assert notes == [False, False, False, True, False]


def test_wrapping_indices():
    s = SharedRing(4, start=2**32 - 2)
    f, b = FrontRing(s), BackRing(s)
    for i in range(4):
        f.put_request(i)
    assert f.full() and f.free_requests() == 0
    f.push_requests_and_check_notify()
    assert s.req_prod == 2
    got = [b.get_request() for _ in range(b.has_unconsumed_requests())]
    assert got == [0, 1, 2, 3]
    for g in got:
        b.put_response(g)
    b.push_responses_and_check_notify()
    assert [f.get_response() for _ in range(f.has_unconsumed_responses())] == [0, 1, 2, 3]
    assert f.free_requests() == 4


def test_backend_overflow_checks():
    s = SharedRing(32)
    b = BackRing(s)
    s.req_prod = 10_000  # hostile frontend: producer far beyond the ring
    assert b.request_prod_overflow(s.req_prod)
    try:
        b.checked_requests()
    except ring.RingError as e:
        assert "bogus" in str(e)
    else:
        raise AssertionError("bogus req_prod not detected")
    s.req_prod = 32
    assert b.checked_requests() == 32
    assert not b.request_cons_overflow(31) and b.request_cons_overflow(32)
    # has_unconsumed_requests never reports more than the ring can hold
    s.req_prod = u32(-1)
    assert b.has_unconsumed_requests() <= 32
