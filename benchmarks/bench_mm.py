"""Speed of the TLB + page-walk kernel per mode against its Python reference.

For native/PV (1-D 4-level walk), shadow (1-D over shadow tables with paging-structure caches:
the same kernel) and HAP (2-D 4x4 with page-walk caches and a nested TLB) it measures, in the
same run, translations per wall second of the compiled kernel over a 10-million-access trace and
of the plain-Python reference over a 100 000-access prefix of the same trace (best of
``REPEAT`` each, every run from fresh tables and a cold TLB), and prints them absolute, as their
ratio, and per event of a bare SimPy loop (:mod:`yardstick`, this machine's yardstick).

Nothing here asserts a speed. It asserts only that the kernel and the reference agree on the
prefix (every counter and every A/D bit) and that the kernel ran the whole trace.

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
from pvsim.mm import workloads
from pvsim.mm.hap import build_translation_setup
from pvsim.mm.walk import O_MISSES, O_REFS, O_STOP, TLB, translate, translate_ref

N = 10_000_000
N_REF = 100_000
REPEAT = 3

MODES = {
    "native/pv (TLB + 4-level walk)": dict(kind="1d", tlb=dict(sets=(16, 8, 1), ways=(4, 4, 4))),
    "shadow (TLB + walk of shadow tables)": dict(kind="1d", tlb=dict(sets=(16, 8, 1), ways=(4, 4, 4),
                                                                         pwc=(32, 4, 2, 0))),
    "hap 2-D 4x4 (+PWC, NTLB)": dict(kind="2d", tlb=dict(sets=(16, 8, 1), ways=(4, 4, 4), pwc=(32, 4, 2, 0),
                                                         ntlb=16)),
}


def _timed(fn, rows, slot, vas, writes, spec, kw):
    """Best wall time of REPEAT runs, each on a fresh copy of the tables and a cold TLB."""
    best, out = float("inf"), None
    for _ in range(REPEAT):
        r = rows.copy()
        tlb = TLB(**spec["tlb"])
        t0 = time.perf_counter()
        out = fn(r, slot, vas, writes, tlb, **kw)
        best = min(best, time.perf_counter() - t0)
    return best, out


def measure(name, spec, n=N, n_ref=N_REF):
    # a process-like layout: 8192 pages (32 MiB) mapped contiguously (16 L1 tables)
    setup, vas = build_translation_setup(spec["kind"], npages=8192, rng=rng_for(7, name), spread=False)
    rows, slot, root, levels, two_d, h_root, h_levels = setup
    # 90 % of the accesses to a hot 0.5 % of the pages (41 pages), the rest uniform over 32 MiB
    trace, writes = workloads.locality_trace(rng_for(7, "trace"), vas, n, hot_frac=0.005, hot_prob=0.9)
    kw = dict(root=root, levels=levels, two_d=two_d, h_root=h_root, h_levels=h_levels)
    # sanity, not speed: kernel and reference agree on the prefix (counters and A/D bits); this also
    # compiles the kernel (or loads it from numba's cache) outside the timed runs
    rk, rr = rows.copy(), rows.copy()
    ok = translate(rk, slot, trace[:n_ref], writes[:n_ref], TLB(**spec["tlb"]), **kw)
    ref = translate_ref(rr, slot, trace[:n_ref], writes[:n_ref], TLB(**spec["tlb"]), **kw)
    np.testing.assert_array_equal(ok, ref)
    np.testing.assert_array_equal(rk, rr)
    tk, out = _timed(translate, rows, slot, trace, writes, spec, kw)
    assert out[O_STOP] == n
    tr, _ = _timed(translate_ref, rows, slot, trace[:n_ref], writes[:n_ref], spec, kw)
    return dict(kernel=n / tk, reference=n_ref / tr, miss_rate=out[O_MISSES] / n,
                refs_per_miss=out[O_REFS] / max(1, out[O_MISSES]))


def run() -> list[tuple[str, dict]]:
    simpy_events_per_s()  # the yardstick, measured in this run (cached for report())
    return [(name, measure(name, spec)) for name, spec in MODES.items()]


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
