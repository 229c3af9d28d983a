"""memory_op: ballooning within max_pages, partial success, permissions, machine_mm hook-up."""

from __future__ import annotations

import pytest

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from pvsim.hypervisor.handlers import memory as M

INC, DEC, POP = O.XENMEM_increase_reservation, O.XENMEM_decrease_reservation, O.XENMEM_populate_physmap


def res(n, order=0, domid=0x7FF0, lst=None, flags=0):
    return A.XenMemoryReservation(extent_start=[0] * n if lst is None else lst, nr_extents=n,
                                  extent_order=order, mem_flags=flags, domid=domid)


def test_balloon_up_within_max_pages_is_partial_success(hv, pvu):
    r = res(30)
    assert pvu("memory_op", INC, r) == 20  # 100 -> 120 = max_pages: 20 of 30 extents
    assert pvu.dom.tot_pages == 120
    got = r.extent_start[:20]
    assert len(set(got)) == 20 and all(m > 0 for m in got)
    assert r.extent_start[20:] == [0] * 10
    assert set(got) <= set(M.domain_frames(hv, pvu.dom))
    assert hv.meter.work[("hypercall.memory_op", "xen.pte_validate_cycles")] == 20
    assert pvu("memory_op", INC, res(1)) == 0  # at max_pages: nothing, not an error
    assert hv.meter.counts["memory.over_allocation"] == 2


def test_balloon_down_and_up_again(hv, pvu):
    frames = M.domain_frames(hv, pvu.dom)
    give = frames[:10]
    assert pvu("memory_op", DEC, res(10, lst=list(give))) == 10
    assert pvu.dom.tot_pages == 90
    assert not set(give) & set(M.domain_frames(hv, pvu.dom))
    # freeing a frame the domain does not own stops the count
    assert pvu("memory_op", DEC, res(2, lst=[frames[10], give[0]])) == 1
    assert pvu.dom.tot_pages == 89
    assert pvu("memory_op", INC, res(5)) == 5 and pvu.dom.tot_pages == 94
    assert pvu("memory_op", INC, res(1, lst=None)) == 1  # NULL list allowed for increase
    r = A.XenMemoryReservation(extent_start=None, nr_extents=1)
    assert pvu("memory_op", INC, r) == 1 and pvu.dom.tot_pages == 96
    assert pvu("memory_op", DEC, r) == 0  # decrease needs a list


def test_extent_order_limits(hv, pvu, dom0):
    pvu.dom.max_pages = 10_000
    assert pvu("memory_op", INC, res(1, order=10)) == 0  # above DOMU_MAX_ORDER 9
    assert pvu("memory_op", INC, res(1, order=9)) == 1
    assert pvu.dom.tot_pages == 100 + 512
    assert dom0("memory_op", INC, res(1, order=10)) == 1  # control domain: up to 18
    assert dom0.dom.tot_pages == 300 + 1024
    frames = M.domain_frames(hv, pvu.dom)
    base = frames[100]  # the 2^9 extent just allocated is contiguous in standalone mode
    assert pvu("memory_op", DEC, res(1, order=9, lst=[base])) == 1
    assert pvu.dom.tot_pages == 100


def test_populate_physmap_pv_and_hvm(hv, pvu, hvm):
    r = res(3, lst=[500, 501, 502])
    assert pvu("memory_op", POP, r) == 3
    assert all(m >= M.FIRST_GUEST_MFN for m in r.extent_start)  # PV learns the MFNs
    r = res(2, lst=[4000, 4001])
    assert hvm("memory_op", POP, r) == 2
    assert r.extent_start == [4000, 4001]  # translated: the list is left alone
    p2m = hv.memory_ledger.domain(hvm.dom).p2m
    assert 4000 in p2m and 4001 in p2m and hvm.dom.tot_pages == 102
    assert hvm("memory_op", DEC, res(2, lst=[4000, 99999])) == 1  # 99999 unpopulated
    assert 4000 not in p2m and hvm.dom.tot_pages == 101
    assert pvu("memory_op", POP, res(2, lst=[1])) == 0  # list shorter than nr_extents
    # populate-on-demand on oneself is refused; for another domain it is only counted
    assert hvm("memory_op", POP, res(1, lst=[7], flags=O.XENMEMF_populate_on_demand)) == 0


def test_privilege_and_domain_lookup(hv, pvu, dom0, hvm):
    assert pvu("memory_op", INC, res(1, domid=0)) == 0  # domU acting on dom0: denied
    assert dom0.dom.tot_pages == 300
    assert hv.meter.counts["memory.denied"] == 1
    assert pvu("memory_op", INC, res(1, domid=77)) == 0  # no such domain
    assert dom0("memory_op", INC, res(2, domid=3)) == 2  # dom0 balloons a guest
    assert hvm.dom.tot_pages == 102 and dom0.dom.tot_pages == 300
    assert dom0("memory_op", POP, res(1, lst=[9], domid=3, flags=O.XENMEMF_populate_on_demand)) == 1
    assert hv.meter.counts["memory.pod_populate"] == 1


def test_bad_reservations_return_start_extent(hv, pvu):
    assert pvu("memory_op", INC, None) == 0
    assert pvu("memory_op", INC, res(1, domid=-1)) == 0
    assert pvu("memory_op", INC, A.XenMemoryReservation(nr_extents=2**27)) == 0  # > UINT_MAX>>6
    cont = INC | (3 << O.MEMOP_EXTENT_SHIFT)  # a continuation starting at extent 3
    r = res(5)
    assert pvu("memory_op", cont, r) == 5 and r.extent_start[:3] == [0, 0, 0]
    assert pvu.dom.tot_pages == 102
    assert pvu("memory_op", cont, res(2)) == 3  # start >= nr_extents
    assert pvu("memory_op", cont, None) == 3
    # mem_flags: too few address bits, or an unprivileged exact-node request
    assert pvu("memory_op", INC, res(1, flags=O.XENMEMF_address_bits(12))) == 0
    assert pvu("memory_op", INC, res(1, flags=O.XENMEMF_node(0) | O.XENMEMF_exact_node_request)) == 0
    assert pvu("memory_op", INC, res(1, flags=O.XENMEMF_node(0))) == 1  # hint only: allowed
    assert pvu("memory_op", DEC, res(1, lst=[-5])) == 0


def test_reservation_queries(hv, pvu, dom0):
    assert pvu("memory_op", O.XENMEM_current_reservation, A.XenMemoryDomain()) == 100
    assert pvu("memory_op", O.XENMEM_maximum_reservation, A.XenMemoryDomain()) == 120
    assert dom0("memory_op", O.XENMEM_current_reservation, A.XenMemoryDomain(domid=1)) == 100
    assert pvu("memory_op", O.XENMEM_current_reservation, A.XenMemoryDomain(domid=0)) == -E.EPERM
    assert pvu("memory_op", O.XENMEM_maximum_reservation, A.XenMemoryDomain(domid=55)) == -E.ESRCH
    assert pvu("memory_op", O.XENMEM_current_reservation, 1) == -E.EFAULT
    cont = O.XENMEM_current_reservation | (1 << O.MEMOP_EXTENT_SHIFT)
    assert pvu("memory_op", cont, A.XenMemoryDomain()) == -E.EINVAL
    assert pvu("memory_op", O.XENMEM_maximum_ram_page, None) > 0
    hv.max_page = 1 << 20
    assert pvu("memory_op", O.XENMEM_maximum_ram_page, None) == 1 << 20
    assert pvu("memory_op", O.XENMEM_maximum_ram_page | (1 << 6), None) == -E.EINVAL
    assert pvu("memory_op", O.XENMEM_exchange, None) == -E.ENOSYS
    assert pvu("memory_op", None, None) == -E.ENOSYS


class FakeMachineMM:
    """The allocator interface of :class:`pvsim.mm.frames.MachineMemory`, with ownership."""

    def __init__(self, free_frames: int):
        self.free = list(range(5000, 5000 + free_frames))
        self.owner: dict[int, int] = {}
        self.max_page = 6000

    def alloc_domheap_page(self, domid):
        if not self.free:
            return -1
        mfn = self.free.pop(0)
        self.owner[mfn] = domid
        return mfn

    def free_domheap_page(self, domid, mfn):
        if self.owner.get(mfn) != domid:
            return -E.EINVAL
        del self.owner[mfn]
        self.free.append(mfn)
        return 0


def test_machine_mm_is_used_when_attached(hv, pvu):
    hv.machine_mm = FakeMachineMM(free_frames=4)
    r = res(6)
    assert pvu("memory_op", INC, r) == 4  # the host runs out after 4 frames
    assert r.extent_start[:4] == [5000, 5001, 5002, 5003] and pvu.dom.tot_pages == 104
    assert pvu("memory_op", DEC, res(2, lst=[5001, 4242])) == 1  # 4242 is not ours
    assert pvu.dom.tot_pages == 103 and 5001 in hv.machine_mm.free
    assert pvu("memory_op", O.XENMEM_maximum_ram_page, None) == 6000
    # an order-1 extent that cannot be completed gives back what it took
    hv.machine_mm.free = [7000]
    assert pvu("memory_op", INC, res(1, order=1)) == 0
    assert hv.machine_mm.free == [7000] and pvu.dom.tot_pages == 103


def test_standalone_host_limit(hv, pvu):
    hv.host_pages = 150  # read when the ledger is first created
    assert pvu("memory_op", O.XENMEM_current_reservation, A.XenMemoryDomain()) == 100
    pvu.dom.max_pages = 1000
    r = res(100)
    done = pvu("memory_op", INC, r)
    assert done == 50 and hv.memory_ledger.in_use() == 150


@pytest.mark.parametrize("guest", ["pvu", "pv32", "hvm"])
def test_memory_op_for_every_guest_type(request, guest):
    c = request.getfixturevalue(guest)
    assert c("memory_op", INC, res(2)) == 2
    assert c.dom.tot_pages == 102


def test_with_the_real_machine_memory(hv, pvu, hvm):
    """Ballooning against pvsim.mm's frame table (MachineMemory)."""
    from pvsim.mm.host import add_domain_memory, attach_machine_memory

    mm = attach_machine_memory(hv, 4096)
    for d in hv.domains.values():
        add_domain_memory(hv, d, d.tot_pages)
    pv_frames = [int(m) for m in pvu.dom.mm.p2m[:4]]
    assert pvu("memory_op", DEC, res(4, lst=list(pv_frames))) == 4
    assert pvu.dom.tot_pages == 96
    assert all(mm.owner[m] != 1 for m in pv_frames)
    assert all(int(x) == -1 for x in pvu.dom.mm.p2m[:4])  # the allocator dropped the P2M entries
    r = res(6)
    assert pvu("memory_op", INC, r) == 6 and pvu.dom.tot_pages == 102
    assert all(mm.owner[m] == 1 for m in r.extent_start)
    # a frame of another domain cannot be given back by this one
    other = int(hv.domains[0].mm.p2m[0])
    assert pvu("memory_op", DEC, res(1, lst=[other])) == 0 and mm.owner[other] == 0
    # translated guest: GFNs through dom.mm.p2m; populate records P2M and M2P
    gfn_mfn = int(hvm.dom.mm.p2m[7])
    assert hvm("memory_op", DEC, res(1, lst=[7])) == 1
    assert int(hvm.dom.mm.p2m[7]) == -1 and mm.owner[gfn_mfn] != 3
    assert hvm("memory_op", DEC, res(1, lst=[7])) == 0  # already gone: -ENOENT stops the count
    assert hvm("memory_op", POP, res(1, lst=[7])) == 1
    new = int(hvm.dom.mm.p2m[7])
    assert new >= 0 and mm.owner[new] == 3 and int(mm.m2p[new]) == 7
    assert hvm.dom.tot_pages == 100
    assert pvu("memory_op", O.XENMEM_maximum_ram_page, None) == 4096


def test_remaining_reservation_stops(hv, pvu, hvm):
    assert pvu("memory_op", INC, res(3, lst=[0])) == 0  # extent list shorter than nr_extents
    assert pvu("memory_op", POP, res(1, order=10, lst=[5])) == 0  # above max_order
    assert pvu("memory_op", POP, res(2, lst=[5, "x"])) == 1  # second GPFN unreadable
    assert pvu.dom.tot_pages == 101
    hvm.dom.max_pages = hvm.dom.tot_pages
    assert hvm("memory_op", POP, res(1, lst=[9000])) == 0  # at max_pages: allocation fails
    assert 9000 not in hv.memory_ledger.domain(hvm.dom).p2m
