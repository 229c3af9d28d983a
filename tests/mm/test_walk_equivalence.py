"""The compiled translate kernel against its plain-Python reference, property-based.

Each example builds a TLB (any geometry: set counts that are and are not powers of two, 1 to 12
ways, so that 4 KiB sets wider than ``HINT_WAYS`` take the last-used-way probe; page-walk caches
and a nested TLB on or off), damages some page-table entries (not present, read-only, PSE set,
pointed elsewhere: guest, host and write faults of both dimensions), and runs
a trace in chunks, the kernel carrying its TLB state from chunk to chunk, with flushes, INVLPGs and
tag switches between chunks and a restart after every fault. At every call the reference starts
from the kernel's state arrays (it decodes them) and must return the same counters (accesses,
hits, misses, references, PWC and NTLB hits, dirty bits set, stop index, fault address and kind)
and leave the same A/D bits in the tables. A kernel whose LRU state drifted from the reference's
would fail a later chunk.
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pvsim.mm.hap import build_translation_setup
from pvsim.mm.walk import ACC, DIRTY, O_STOP, PSE, RW, TLB, translate, translate_ref

SETUPS = [("1d", 4, 1, 4, 1), ("1d", 4, 2, 4, 1), ("1d", 5, 1, 4, 1), ("1d", 4, 3, 4, 1),
          ("2d", 4, 1, 4, 1), ("2d", 4, 1, 4, 2), ("2d", 4, 2, 4, 2), ("2d", 4, 2, 4, 1), ("2d", 5, 1, 5, 1),
          # large pages in both dimensions (issue 12 item 7): every (guest, host) leaf-size pair
          ("2d", 4, 1, 4, 3), ("2d", 4, 2, 4, 3), ("2d", 4, 3, 4, 1), ("2d", 4, 3, 4, 2), ("2d", 4, 3, 4, 3)]


@functools.lru_cache(maxsize=None)
def _setup(i: int):
    kind, gl, gleaf, hl, hleaf = SETUPS[i]
    return build_translation_setup(kind, guest_levels=gl, guest_leaf=gleaf, host_levels=hl, host_leaf=hleaf,
                                   npages=96, rng=np.random.default_rng(100 + i))


walk_caches = st.sampled_from([0, 1, 2, 3, 4, 8, 12])


@st.composite
def tlbs(draw):
    sets = tuple(draw(st.integers(0, 9)) for _ in range(3))
    ways = tuple(draw(st.integers(1, 12)) for _ in range(3))
    pwc = tuple(draw(walk_caches) for _ in range(4))
    return dict(sets=sets, ways=ways, pwc=pwc, ntlb=draw(walk_caches))


def _damage(rows, slot, rng, n):
    """``n`` random present entries changed: cleared, made read-only, given PSE, D or A cleared, or
    pointed at another frame (a table, or any frame the slot map knows)."""
    present = np.argwhere((rows & np.uint64(1)) != 0)
    tables = np.flatnonzero(slot >= 0)
    for s, idx in present[rng.integers(0, len(present), size=n)]:
        e = int(rows[s, idx])
        k = int(rng.integers(0, 6))
        if k == 0:
            e &= ~1
        elif k == 1:
            e &= ~RW
        elif k == 2:
            e |= PSE
        elif k == 3:
            e &= ~(DIRTY | ACC)
        else:
            f = int(rng.choice(tables)) if k == 4 else int(rng.integers(0, len(slot)))
            e = (e & 0xFFF) | (f << 12)
        rows[s, idx] = np.uint64(e)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup_i=st.integers(0, len(SETUPS) - 1), geometry=tlbs(), seed=st.integers(0, 2**32 - 1),
       n_damage=st.sampled_from([0, 0, 1, 4, 16]), hot=st.floats(0.0, 1.0), write_p=st.floats(0.0, 1.0),
       chunks=st.integers(1, 5))
def test_kernel_equals_reference(setup_i, geometry, seed, n_damage, hot, write_p, chunks):
    (rows0, slot, root, levels, two_d, h_root, h_levels), vas = _setup(setup_i)
    rng = np.random.default_rng(seed)
    rows = rows0.copy()
    _damage(rows, slot, rng, n_damage)
    n = int(rng.integers(1, 800))
    pick = np.where(rng.random(n) < hot, rng.integers(0, 6, size=n), rng.integers(0, len(vas), size=n))
    trace = vas[pick] + rng.integers(0, 1 << 21, size=n)  # 4 KiB pages and beyond them, within 2 MiB
    trace[rng.random(n) < 0.02] = (1 << 46) + 4096 * 77  # unmapped
    writes = rng.random(n) < write_p
    tlb = TLB(**geometry)
    kw = dict(root=root, levels=levels, two_d=two_d, h_root=h_root, h_levels=h_levels)
    tag = 0
    for part in np.array_split(np.arange(n), chunks):
        if len(part) == 0:
            continue
        v, w = trace[part[0]:part[-1] + 1], writes[part[0]:part[-1] + 1]
        start = 0
        while start < len(v):
            rows_r, tlb_r = rows.copy(), tlb.copy()
            out = translate(rows, slot, v, w, tlb, tag=tag, start=start, **kw)
            ref = translate_ref(rows_r, slot, v, w, tlb_r, tag=tag, start=start, **kw)
            np.testing.assert_array_equal(out, ref)
            np.testing.assert_array_equal(rows, rows_r)
            start = int(out[O_STOP]) + 1  # past the faulting access (or the end)
        k = int(rng.integers(0, 5))
        if k == 0:
            tlb.flush()
        elif k == 1:
            tlb.flush(tag)
        elif k == 2:
            tlb.invlpg(int(v[0]), tag)
        elif k == 3:
            tag = int(rng.integers(0, 4096))
