"""Remus: nothing lost or duplicated when the primary fails at a random instant; the mutant that
releases buffered packets before the acknowledgement is caught; the overhead curve's directions.
COLO (the ``colo`` option): the same property, its mutant (a divergent packet released before its
checkpoint's ack), and its costs (a checkpoint per divergence, latency = forward + comparison)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pvsim.ha.remus import COLO_COMPARE_NS, Remus, RemusOptions, overhead
from pvsim.migrate.dirty import WriteModel
from pvsim.workloads.spec import WritableSpec


def remus(seed=1, interval_ms=50.0, mb_per_s=100.0, disk_mb_per_s=10.0, ram_mib=16, release_early=False,
          pps=5000.0, link_mbps=1000.0, colo=False, divergence=1e-3, colo_release_diverged=False):
    m = WriteModel.of(WritableSpec(mib=4, mb_per_s=mb_per_s, pattern="hot"), ram_mib, seed_offset=seed)
    d = WriteModel.of(WritableSpec(mib=8, mb_per_s=disk_mb_per_s), 64, seed_offset=seed + 1)
    return Remus(m, d, seed, RemusOptions(interval_ms=interval_ms, pps=pps, link_mbps=link_mbps,
                                          release_early=release_early, keep_snapshots=True, colo=colo,
                                          divergence=divergence, colo_release_diverged=colo_release_diverged))


def problems(r) -> list[str]:
    out = []
    if not np.array_equal(r.backup_mem, r.primary_mem_at):
        out.append("backup memory differs from the primary's at the last acknowledged checkpoint")
    if not np.array_equal(r.backup_disk, r.primary_disk_at):
        out.append("backup disk differs")
    seqs = [s for s, _, _ in r.delivered]
    if len(set(seqs)) != len(seqs):
        out.append("a packet repeated")
    if sorted(set(seqs)) != list(range(len(set(seqs)))):
        out.append("a packet missing")
    return out


cases = st.fixed_dictionaries({
    "seed": st.integers(0, 2**30),
    "interval_ms": st.sampled_from([10.0, 25.0, 50.0, 200.0]),
    "mb_per_s": st.floats(0, 400),
    "disk_mb_per_s": st.floats(0, 50),
    "link_mbps": st.sampled_from([300.0, 1000.0, 10000.0]),
})


@settings(max_examples=40, deadline=None)
@given(cases, st.floats(0.0, 600.0))
def test_nothing_lost_or_duplicated(kw, fail_at):
    r = remus(**kw).run(800, fail_at_ms=fail_at)
    assert problems(r) == []
    assert r.failover_ns >= r.failed_at
    assert any(by == "backup" for _, _, by in r.delivered)


@settings(max_examples=20, deadline=None)
@given(cases, st.floats(5.0, 600.0))
def test_the_early_release_mutant_is_caught(kw, fail_at):
    honest = remus(**kw).run(800, fail_at_ms=fail_at)
    assert problems(honest) == []
    # the mutant fails whenever the primary emitted a packet after the checkpoint the backup holds
    after = honest.produced_ns > honest.checkpoints[honest.committed].suspend_ns
    mutant = remus(**kw, release_early=True).run(800, fail_at_ms=fail_at)
    if after.any():
        assert "a packet repeated" in problems(mutant)


def test_mutant_caught_on_a_fixed_case():
    assert "a packet repeated" in problems(remus(release_early=True).run(500, fail_at_ms=333))
    assert problems(remus().run(500, fail_at_ms=333)) == []


def test_overhead_directions():
    rows = [overhead(remus(interval_ms=iv, mb_per_s=200).run(1000), 5000.0) for iv in (25, 100, 500)]
    lat = [x["added_latency_ms_mean"] for x in rows]
    loss = [x["throughput_loss"] for x in rows]
    assert lat[0] < lat[1] < lat[2]
    assert loss[0] > loss[1] > loss[2] > 0
    assert lat[2] > 250  # about half an interval plus the pause and the acknowledgement


def test_deterministic():
    a, b = remus(seed=9).run(400, fail_at_ms=123), remus(seed=9).run(400, fail_at_ms=123)
    assert a.delivered == b.delivered and np.array_equal(a.backup_mem, b.backup_mem)


# ------------------------------------------------------------------------------------------- COLO
colo_cases = st.fixed_dictionaries({
    "seed": st.integers(0, 2**30),
    "divergence": st.sampled_from([1e-4, 1e-3, 1e-2]),
    "mb_per_s": st.floats(0, 400),
    "disk_mb_per_s": st.floats(0, 50),
    "link_mbps": st.sampled_from([300.0, 1000.0, 10000.0]),
})


@settings(max_examples=40, deadline=None)
@given(colo_cases, st.floats(0.0, 600.0))
def test_colo_nothing_lost_or_duplicated(kw, fail_at):
    r = remus(colo=True, **kw).run(800, fail_at_ms=fail_at)
    assert problems(r) == []
    assert any(by == "backup" for _, _, by in r.delivered)


@settings(max_examples=30, deadline=None)
@given(colo_cases, st.floats(0.0, 600.0))
def test_colo_early_release_mutant_is_caught(kw, fail_at):
    honest = remus(colo=True, **kw).run(800, fail_at_ms=fail_at)
    mutant = remus(colo=True, colo_release_diverged=True, **kw).run(800, fail_at_ms=fail_at)
    # caught whenever the primary died with a divergent packet whose checkpoint the secondary lacks,
    # after the mutant had let that packet out
    p = honest.colo_pending_ns
    if p is not None and p + 20_000 + COLO_COMPARE_NS <= honest.failed_at:
        assert "a packet repeated" in problems(mutant)


def test_colo_mutant_caught_on_a_fixed_case():
    assert problems(remus(colo=True).run(1000, fail_at_ms=500)) == []
    assert "a packet repeated" in problems(remus(colo=True, colo_release_diverged=True).run(1000, fail_at_ms=500))


def test_colo_costs_beside_remus():
    c = remus(colo=True, divergence=1e-3)
    rc = c.run(1000)
    oc = overhead(rc, 5000.0)
    orm = overhead(remus(interval_ms=50).run(1000), 5000.0)
    # one checkpoint per divergent packet (each ends its epoch), none at the end without divergence
    assert oc["checkpoints"] == len(rc.checkpoints) - 1 > 0
    assert abs(oc["divergence_per_packet"] - oc["checkpoints"] / len(rc.produced_ns)) < 1e-12
    # a matched packet waits for the forward (20 us) and the comparison (5 us), not for an ack
    ok = rc.released_ns >= 0
    lat = rc.released_ns[ok] - rc.produced_ns[ok]
    assert np.median(lat) == 20_000 + COLO_COMPARE_NS
    assert oc["added_latency_ms_mean"] < 1.0 < orm["added_latency_ms_mean"]
    # no divergence at all: no checkpoint, no throughput loss
    o0 = overhead(remus(colo=True, divergence=0.0).run(500), 5000.0)
    assert o0["checkpoints"] == 0 and abs(o0["throughput_loss"]) < 1e-3
    # more divergence, more checkpoints
    assert overhead(remus(colo=True, divergence=1e-2).run(1000), 5000.0)["checkpoints"] > oc["checkpoints"]


def test_colo_deterministic():
    a = remus(seed=9, colo=True).run(400, fail_at_ms=123)
    b = remus(seed=9, colo=True).run(400, fail_at_ms=123)
    assert a.delivered == b.delivered and [c.suspend_ns for c in a.checkpoints] == [c.suspend_ns for c in b.checkpoints]
