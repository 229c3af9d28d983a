"""The TLB tag (PCID/VPID/ASID) space runs out: a new generation with a full flush.

On a profile with a tagged TLB (``modern``) a CR3 load takes a fresh tag instead of flushing
(:meth:`pvsim.mm.machine.MachineMMU._flush_tlb_state`). The tag space has 4095 values (1..4095,
12 bits, 0 reserved); the defect: after 4095 loads the tag wrapped to 1 without a flush, so TLB
entries left by the address space that had used tag 1 long ago hit again for a different address
space (a stale translation). Xen flushes when the ASID space is exhausted
(``xen/arch/x86/hvm/asid.c``: ``hvm_asid_handle_vmenter`` finds ``next_asid > max_asid``, calls
``hvm_asid_flush_core`` -- ``core_asid_generation++`` -- and restarts at ASID 1 with a flush of
all ASIDs). The model now does the same and counts it as ``tlb.asid_rollover``.
"""

import numpy as np

from pvsim.core.meter import Meter
from pvsim.core.profile import load_profile
from pvsim.mm.machine import ASID_MAX
from pvsim.wiring import scratch_platform


def _touch(g):
    vpns = np.fromiter(g.current.pages.keys(), dtype=np.int64)
    g.access_trace(vpns << 12, np.zeros(len(vpns), bool))
    return len(vpns)


def _two_processes(mode):
    """Process 1 (4 pages at 0x400000) runs and touches its pages under tag ``t1``; process 2 (its
    own 4 pages at the same addresses, other frames) is then switched to."""
    p = scratch_platform(mode, profile=load_profile("modern"), nr_pages=4096)
    g, mm = p.mmu, p.machine_mmu
    g.populate(4)
    first = g.current.pid
    g.context_switch()
    second = g.current.pid
    g.populate(4)
    with p.hv.metering(Meter()):
        g.context_switch(first)
        assert _touch(g) == 4
        t1 = mm.asid
        g.context_switch(second)
    return p, g, mm, t1


def test_the_tag_space_has_4095_tags():
    assert ASID_MAX == 4095


def test_a_wrapped_tag_never_hits_the_old_generations_entries():
    """Switch address spaces until the tag comes back round to process 1's: process 2's first
    touches under that tag must all miss (before the fix: 4 stale hits on process 1's frames)."""
    p, g, mm, t1 = _two_processes("native")
    assert (mm.tlb.tag >= 0).any()
    loads = 0
    with p.hv.metering(Meter()):
        while mm.asid != t1 and loads < 2 * ASID_MAX:
            mm.cr3_load(mm.root)
            loads += 1
    assert mm.asid == t1
    assert loads == ASID_MAX - 1  # the switch to process 2 was the first of the 4095
    m = Meter()
    with p.hv.metering(m):
        assert _touch(g) == 4
    assert m.counts.get("tlb.hit", 0) == 0
    assert m.counts["tlb.miss"] == 4


def test_rollover_flushes_everything_once_per_generation_and_is_counted():
    p, g, mm, _ = _two_processes("native")
    gen, start = mm.asid_generation, mm.asid
    m = Meter()
    with p.hv.metering(m):
        for _ in range(ASID_MAX - start):  # up to the last free tag: no roll-over yet
            mm.cr3_load(mm.root)
        assert mm.asid == ASID_MAX
        assert m.counts.get("tlb.asid_rollover", 0) == 0
        assert (mm.tlb.tag >= 0).any()
        mm.cr3_load(mm.root)  # the space is exhausted: new generation, full flush, tag 1
    assert mm.asid == 1
    assert mm.asid_generation == gen + 1
    assert m.counts["tlb.asid_rollover"] == 1
    assert not (mm.tlb.tag >= 0).any()
    assert not (mm.tlb.pwc_tag >= 0).any()


def test_hap_vpid_wrap_flushes_too():
    """Under HAP (VPID-tagged TLB, nested walks) the same wrap: no stale hit."""
    p, g, mm, t1 = _two_processes("hvm")
    assert mm.tagged
    with p.hv.metering(Meter()):
        while mm.asid != t1:
            mm.cr3_load(mm.root)
    m = Meter()
    with p.hv.metering(m):
        assert _touch(g) == 4
    assert m.counts.get("tlb.hit", 0) == 0
    assert m.counts["tlb.miss"] == 4
