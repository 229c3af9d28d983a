"""Speed of the TLB + page-walk kernel per mode against its Python reference (issue 3).

Run: ``.venv/bin/python -m pytest -m benchmark benchmarks/bench_mm.py -s``
(or ``python benchmarks/bench_mm.py``). Reports translations per second of the compiled kernel
over a 10-million-access trace and of the reference over a prefix of the same trace, and their
ratio, for native/PV (1-D 4-level), shadow (1-D over shadow tables: the same kernel) and HAP
(2-D 4x4 with page-walk caches and a nested TLB).
"""

from __future__ import annotations

import time

import pytest

from pvsim.core.engine import rng_for
from pvsim.mm import workloads
from pvsim.mm.hap import build_translation_setup
from pvsim.mm.walk import O_STOP, TLB, translate, translate_ref

N = 10_000_000
N_REF = 100_000

MODES = {
    "native/pv (TLB + 4-level walk)": dict(kind="1d", tlb=dict(sets=(16, 8, 1), ways=(4, 4, 4))),
    "shadow (TLB + walk of shadow tables)": dict(kind="1d", tlb=dict(sets=(16, 8, 1), ways=(4, 4, 4),
                                                                         pwc=(32, 4, 2, 0))),
    "hap 2-D 4x4 (+PWC, NTLB)": dict(kind="2d", tlb=dict(sets=(16, 8, 1), ways=(4, 4, 4), pwc=(32, 4, 2, 0),
                                                         ntlb=16)),
}


def measure(name, spec, n=N, n_ref=N_REF):
    # a process-like layout: 8192 pages (32 MiB) mapped contiguously (16 L1 tables)
    setup, vas = build_translation_setup(spec["kind"], npages=8192, rng=rng_for(7, name), spread=False)
    rows, slot, root, levels, two_d, h_root, h_levels = setup
    # 90 % of the accesses to a hot 0.5 % of the pages (41 pages), the rest uniform over 32 MiB
    trace, writes = workloads.locality_trace(rng_for(7, "trace"), vas, n, hot_frac=0.005, hot_prob=0.9)
    kw = dict(root=root, levels=levels, two_d=two_d, h_root=h_root, h_levels=h_levels)
    translate(rows, slot, trace[:1000], writes[:1000], TLB(**spec["tlb"]), **kw)  # compile / warm
    t0 = time.perf_counter()
    out = translate(rows, slot, trace, writes, TLB(**spec["tlb"]), **kw)
    tk = time.perf_counter() - t0
    assert out[O_STOP] == n
    t0 = time.perf_counter()
    translate_ref(rows, slot, trace[:n_ref], writes[:n_ref], TLB(**spec["tlb"]), **kw)
    tr = time.perf_counter() - t0
    k_rate, r_rate = n / tk, n_ref / tr
    print(f"    [{name}: TLB miss rate {out[3] / n:.1%}, {out[4] / max(1, out[3]):.1f} references per miss]")
    return k_rate, r_rate, k_rate / r_rate


@pytest.mark.benchmark
def test_translation_speed():
    rows = []
    for name, spec in MODES.items():
        k, r, ratio = measure(name, spec)
        rows.append((name, k, r, ratio))
        print(f"{name:40s} kernel {k / 1e6:7.1f} M translations/s   reference {r / 1e6:6.3f} M/s   x{ratio:6.0f}")
    native = rows[0]
    assert native[1] >= 20e6, f"TLB + 4-level walk: {native[1] / 1e6:.1f} M/s < 20 M/s"
    assert all(r[3] >= 50 for r in rows), rows


if __name__ == "__main__":
    test_translation_speed()
