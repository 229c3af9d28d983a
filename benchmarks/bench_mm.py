"""Speed of the TLB + page-walk kernel (:func:`pvsim.mm.walk.translate`) per paging kind against its
plain-Python reference (:func:`pvsim.mm.walk.translate_ref`).

The same process-like layout everywhere: 8192 pages (32 MiB) mapped contiguously, and one trace of
10 million accesses, 90 % of them to a hot 0.5 % of the pages (41 pages), the rest uniform over the
32 MiB, 30 % writes. Cases:

* ``native/pv``: the 1-D 4-level walk on a table in machine frames (what ``hardware`` and
  ``direct`` paging run), a 16x4 4 KiB TLB, no walk caches (4 references per miss);
* ``shadow``: the 1-D walk of the **shadow tables** an ``hvm-shadow`` guest of the ``modern``
  profile built for that layout (its hidden faults fixed up once beforehand), with that profile's
  TLB and paging-structure caches and the guest's ASID;
* ``hap 2-D 4x4``: the 2-D walk, 4-level guest table over a 4-level p2m of 4 KiB leaves (24
  references per cold miss), page-walk caches and a 16-entry nested TLB;
* ``hap (hvm guest)``: the 2-D walk of an ``hvm`` guest of the ``modern`` profile: its own guest
  tables over its p2m (2 MiB leaves), with that profile's TLB, walk caches and nested TLB.

In the same run it measures translations per wall second of the compiled kernel over the whole
trace and of the reference over a 100 000-access prefix (best of ``REPEAT`` each, every run from
fresh tables and a cold TLB), and the bare SimPy loop (:mod:`yardstick`, this machine's
yardstick), and prints them absolute, as the kernel/reference ratio and per bare-SimPy event.

Nothing here asserts a speed. It asserts only that the kernel and the reference agree on the prefix
(every counter and every A/D bit) and that the kernel ran the whole trace without a fault.

    make bench                       (every benchmark)
    .venv/bin/python -m pytest -m benchmark benchmarks/bench_mm.py -s -o python_files="bench_*.py"
    .venv/bin/python benchmarks/bench_mm.py
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from yardstick import report, simpy_events_per_s

from pvsim.core.engine import rng_for
from pvsim.core.profile import load_profile
from pvsim.mm import workloads
from pvsim.mm.hap import build_translation_setup
from pvsim.mm.walk import O_MISSES, O_REFS, O_STOP, TLB, translate, translate_ref
from pvsim.wiring import scratch_platform

N = 10_000_000
N_REF = 100_000
REPEAT = 3
NPAGES = 8192
GUEST_VA = 0x40000000  # where the guest cases map their 32 MiB


def _synthetic(kind, tlb):
    def make():
        setup, vas = build_translation_setup(kind, npages=NPAGES, rng=rng_for(7, kind), spread=False)
        rows, slot, root, levels, two_d, h_root, h_levels = setup
        return rows, slot, vas, tlb, dict(root=root, levels=levels, two_d=two_d, h_root=h_root, h_levels=h_levels)
    return make


def _guest(mode):
    """A one-vCPU ``mode`` guest that has touched (written) every page of the layout once: its
    tables (and, under shadow paging, the shadows) are built; the TLB geometry is its profile's."""
    def make():
        p = scratch_platform(mode, profile=load_profile("modern"), nr_pages=2 * NPAGES)
        mach = p.machine_mmu
        vas = (np.arange(NPAGES, dtype=np.int64) << 12) + GUEST_VA
        with mach.unmetered():
            p.mmu.access_trace(vas, np.ones(NPAGES, bool))
        t = mach.tlb
        tlb = dict(sets=tuple(int(x) for x in t.sets), ways=tuple(int(x) for x in t.ways),
                   pwc=tuple(int(x) for x in t.pwc_n[2:]), ntlb=int(t.n_ntlb))
        if mach.two_d:
            kw = dict(root=mach.root, two_d=True, h_root=mach.p2m.root, h_levels=mach.p2m.radix.levels)
        else:
            kw = dict(root=mach._root_shadow())
        return mach.mm.rows.copy(), mach.mm.slot, vas, tlb, dict(kw, tag=mach.asid)
    return make


CASES = {
    "native/pv (TLB + 4-level walk)": _synthetic("1d", dict(sets=(16, 8, 1), ways=(4, 4, 4))),
    "shadow (walk of an hvm-shadow guest's shadow tables)": _guest("hvm-shadow"),
    "hap 2-D 4x4 (+PWC, NTLB)": _synthetic("2d", dict(sets=(16, 8, 1), ways=(4, 4, 4), pwc=(32, 4, 2, 0),
                                                      ntlb=16)),
    "hap (an hvm guest's tables over its p2m)": _guest("hvm"),
}


def _timed(fn, rows, slot, vas, writes, tlb, kw):
    """Best wall time of REPEAT runs, each on a fresh copy of the tables and a cold TLB."""
    best, out = float("inf"), None
    for _ in range(REPEAT):
        r = rows.copy()
        t = TLB(**tlb)
        t0 = time.perf_counter()
        out = fn(r, slot, vas, writes, t, **kw)
        best = min(best, time.perf_counter() - t0)
    return best, out


def measure(make, n=N, n_ref=N_REF) -> dict:
    rows, slot, vas, tlb, kw = make()
    trace, writes = workloads.locality_trace(rng_for(7, "trace"), vas, n, hot_frac=0.005, hot_prob=0.9)
    # sanity, not speed: kernel and reference agree on the prefix (counters and A/D bits); this also
    # compiles the kernel (or loads it from numba's cache) outside the timed runs
    rk, rr = rows.copy(), rows.copy()
    ok = translate(rk, slot, trace[:n_ref], writes[:n_ref], TLB(**tlb), **kw)
    ref = translate_ref(rr, slot, trace[:n_ref], writes[:n_ref], TLB(**tlb), **kw)
    np.testing.assert_array_equal(ok, ref)
    np.testing.assert_array_equal(rk, rr)
    tk, out = _timed(translate, rows, slot, trace, writes, tlb, kw)
    assert out[O_STOP] == n, "the kernel stopped at a fault"
    tr, _ = _timed(translate_ref, rows, slot, trace[:n_ref], writes[:n_ref], tlb, kw)
    return dict(kernel=n / tk, reference=n_ref / tr, miss_rate=out[O_MISSES] / n,
                refs_per_miss=out[O_REFS] / max(1, out[O_MISSES]))


def run() -> list[tuple[str, dict]]:
    simpy_events_per_s()  # the yardstick, measured in this run (cached for report())
    return [(name, measure(make)) for name, make in CASES.items()]


def show(results) -> None:
    y = simpy_events_per_s()
    print(f"\nyardstick: bare SimPy timeout loop {y:,.0f} events/wall s")
    for name, m in results:
        print(f"{name}  [TLB miss rate {m['miss_rate']:.1%}, {m['refs_per_miss']:.1f} references per miss]")
        print(f"    kernel {m['kernel'] / 1e6:6.1f} M translations/s   reference {m['reference'] / 1e6:6.3f} M/s   "
              f"kernel/reference x{m['kernel'] / m['reference']:5.0f}   "
              f"{m['kernel'] / y:5.0f} kernel translations per bare-SimPy event")
        print("    " + report("kernel", m["kernel"], "translations"))
        print("    " + report("reference", m["reference"], "translations"))


@pytest.mark.benchmark
def test_translation_speed():
    show(run())


if __name__ == "__main__":
    show(run())
