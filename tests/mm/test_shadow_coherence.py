"""Shadow coherence under random guest MMU activity (bt and hvm-shadow).

After every guest operation, every shadow entry reachable from the loaded root must agree with the
guest's own tables: an upper-level shadow entry points at the shadow of the guest table the guest
entry names, at the right level; an L1 shadow entry maps the machine frame behind the guest frame,
and is writable only if the guest entry is writable and the frame is not a shadowed (traced) page
table. This drives the trace-lifetime rules (freed tables stay traced, reuse as data or at another
level is detected) through fork/exit/exec/mmap/munmap/fault sequences, with the quicklists shuffled
between levels and handed back to the page allocator at random.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pvsim.core.meter import Meter
from pvsim.core.profile import load_profile
from pvsim.mm import x86 as C
from pvsim.wiring import scratch_platform

PROF = load_profile("p4-2006")


def check_coherent(sm) -> int:
    """Walk the shadow tree from the current root; returns the number of L1 entries checked."""
    guest_of = {s: g for g, s in sm.shadow_of.items()}
    checked = 0
    stack = [(sm.shadow_of[sm.root], 4)]
    while stack:
        smfn, lv = stack.pop()
        g = guest_of[smfn]
        assert sm.level_of[g] == lv, f"shadow of guest frame {g} used at level {lv}, built for {sm.level_of[g]}"
        sents = sm.mm.entries(smfn)
        for i in np.flatnonzero(sents & np.uint64(1)):
            se = int(sents[i])
            ge = sm.mm.read_entry(sm.frame_of(g), int(i))
            assert ge & 1, f"level-{lv} shadow entry {i} present, guest entry not"
            gchild = C.pte_mfn(ge)
            if lv > 1:
                assert C.pte_mfn(se) == sm.shadow_of.get(gchild), f"stale level-{lv} link at {i}"
                stack.append((C.pte_mfn(se), lv - 1))
            else:
                assert C.pte_mfn(se) == int(sm.dmm.p2m[gchild]), "L1 shadow maps the wrong frame"
                if se & C._PAGE_RW:
                    assert ge & C._PAGE_RW, "shadow writable where the guest entry is read-only"
                    assert gchild not in sm.shadow_of, "a shadowed page table is mapped writable"
                checked += 1
    return checked


OPS = ["fork", "switch", "exit", "exec", "mmap_touch", "munmap", "cow", "anon", "ptemod", "touch",
       "shuffle_quicklists", "free_quicklists"]


def apply(g, op: str, arg: int) -> None:
    if op == "fork":
        g.fork(8 + arg % 48)
    elif op == "switch":
        g.context_switch()
    elif op == "exit":
        g.exit()
    elif op == "exec":
        g.exec(4 + arg % 24)
    elif op == "mmap_touch":
        g.mmap(4 + arg % 12)
        for _ in range(1 + arg % 4):
            g.page_fault("file" if arg % 2 else "anon")
    elif op == "munmap":
        g.munmap(16)
    elif op == "cow":
        g.page_fault("cow")
    elif op == "anon":
        g.page_fault("anon")
    elif op == "ptemod":
        g.ptemod()
    elif op == "touch":
        a = g.current
        vpns = np.fromiter(a.pages.keys(), dtype=np.int64)
        if len(vpns):
            pick = vpns[np.arange(arg % 7, len(vpns), 3)]
            g.access_trace(pick << 12, (pick & 1).astype(bool))
    elif op == "shuffle_quicklists":  # a freed table comes back at another level
        q = g.pt_quick
        q[1], q[2], q[3], q[4] = q[1 + arg % 4], q[1 + (arg + 1) % 4], q[1 + (arg + 2) % 4], q[1 + (arg + 3) % 4]
    elif op == "free_quicklists":  # freed tables go back to the page allocator (reused as data)
        for q in g.pt_quick.values():
            g.free.extend(q)
            q.clear()


@pytest.mark.parametrize("mode", ["bt", "hvm-shadow"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 1000)), min_size=1, max_size=30))
def test_shadows_stay_coherent_with_guest_tables(mode, seq):
    p = scratch_platform(mode, profile=PROF, nr_pages=4096)
    g, sm = p.mmu, p.machine_mmu
    with p.hv.metering(Meter()):
        for op, arg in seq:
            apply(g, op, arg)
            check_coherent(sm)
            assert sm.meter.counts.get("mmu.fixup_livelock", 0) == 0
        # and every page of the running process is reachable through coherent shadows
        a = g.current
        vpns = np.fromiter(a.pages.keys(), dtype=np.int64)
        g.access_trace(vpns << 12, np.zeros(len(vpns), bool))
        assert check_coherent(sm) >= len(vpns)


def test_the_checker_catches_a_stale_link():
    p = scratch_platform("bt", profile=PROF, nr_pages=4096)
    g, sm = p.mmu, p.machine_mmu
    g.populate(8)
    check_coherent(sm)
    l1 = next(t for (lv, _), t in g.current.tables.items() if lv == 1)
    smfn = sm.shadow_of[l1]
    ents = sm.mm.entries(smfn)
    i = int(np.flatnonzero(ents & np.uint64(1))[0])
    ents[i] = np.uint64(C.make_pte(int(sm.dmm.p2m[l1]), C._PAGE_PRESENT | C._PAGE_RW))  # map a table RW
    with pytest.raises(AssertionError):
        check_coherent(sm)
