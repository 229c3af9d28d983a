"""PV MMU rules no test exercised before issue 16: freeing a frame that is still mapped (the
general count), and a privileged domain's foreign mapping paths (pg_owner != pt_owner)."""

from __future__ import annotations

import os
import sys

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.mm import x86 as C
from pvsim.mm.host import add_domain_memory, attach_machine_memory

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "mm"))
from hostile import build_address_space  # noqa: E402

P, RW, US = C._PAGE_PRESENT, C._PAGE_RW, C._PAGE_USER


def world():
    hv = Hypervisor()
    mm = attach_machine_memory(hv, 256)
    d0 = hv.add_domain(Domain(0, "dom0", "pv", "pv64", privileged=True))
    g = hv.add_domain(Domain(1, "guest", "pv", "pv64"))
    add_domain_memory(hv, d0, 24)
    add_domain_memory(hv, g, 24)
    t0 = build_address_space(hv, d0, list(range(24)), 4)
    tg = build_address_space(hv, g, list(range(24)), 4)
    return hv, mm, d0, g, t0, tg


def dec(hv, dom, mfn):
    r = A.XenMemoryReservation(extent_start=[mfn], nr_extents=1, extent_order=0, mem_flags=0, domid=0x7FF0)
    return hv.hypercall_by_name(dom.vcpus[0], "memory_op", O.XENMEM_decrease_reservation, r)


def upd(hv, dom, reqs, foreigndom=O.DOMID_SELF):
    return hv.hypercall_by_name(dom.vcpus[0], "mmu_update", reqs, len(reqs), None, foreigndom)


def test_a_frame_still_mapped_read_only_cannot_be_freed():
    # xen/common/page_alloc.c / guest_remove_page: a page with references beyond the allocation's
    # own stays allocated (here: a read-only mapping holds a general reference, no type)
    hv, mm, _, g, _, (l4, l3, l2, l1) = world()
    data = int(g.mm.p2m[20])
    assert upd(hv, g, [((l1 << 12) | (100 * 8), C.make_pte(data, P | US))]) == 0
    assert mm.count[data] == 2 and mm.type_count[data] == 0
    assert dec(hv, g, data) == 0  # refused: still mapped
    assert mm.allocated[data] and mm.owner[data] == 1
    assert upd(hv, g, [((l1 << 12) | (100 * 8), 0)]) == 0
    assert mm.count[data] == 1
    assert dec(hv, g, data) == 1
    assert not mm.allocated[data]


def test_privileged_foreign_mapping_paths():
    # xen/arch/x86/mm.c mod_l1_entry: a privileged pg_owner maps the foreign frame; an L2+
    # update with pg_owner != pt_owner is refused (-EINVAL, "pg_owner" only applies to L1s)
    hv, mm, d0, g, (l4, l3, l2, l1), (gl4, gl3, gl2, gl1) = world()
    gdata = int(g.mm.p2m[21])
    before = int(mm.count[gdata])
    assert upd(hv, d0, [((l1 << 12) | (50 * 8), C.make_pte(gdata, P | RW | US))], foreigndom=1) == 0
    assert mm.count[gdata] == before + 1 and mm.type[gdata] == C.PGT_writable_page
    # an L2 entry naming a foreign L1: refused even for dom0
    new_l1 = int(g.mm.p2m[22])
    assert upd(hv, d0, [((l2 << 12) | (7 * 8), C.make_pte(new_l1, P | RW | US))], foreigndom=1) == -E.EINVAL
    assert mm.entries(l2)[7] == 0
    # even an L2 entry that would be valid for dom0 itself (its own fresh frame as an L1)
    own = int(d0.mm.p2m[20])
    assert upd(hv, d0, [((l2 << 12) | (8 * 8), C.make_pte(own, P | RW | US))], foreigndom=1) == -E.EINVAL
    assert mm.entries(l2)[8] == 0
    assert upd(hv, d0, [((l2 << 12) | (8 * 8), C.make_pte(own, P | RW | US))]) == 0  # without foreigndom: fine
    # the guest may not do the same (xsm_mmu_update: a foreign pg_owner needs privilege)
    assert upd(hv, g, [((gl1 << 12) | (60 * 8), C.make_pte(int(d0.mm.p2m[20]), P | US))], foreigndom=0) == -E.EPERM
    # and without foreigndom, dom0's own frames only (get_page_from_l1e: could_not_pin -> -EBUSY)
    assert upd(hv, d0, [((l1 << 12) | (51 * 8), C.make_pte(gdata, P | US))]) == -E.EBUSY
    # unmapping drops the foreign reference
    assert upd(hv, d0, [((l1 << 12) | (50 * 8), 0)], foreigndom=1) == 0
    assert mm.count[gdata] == before
