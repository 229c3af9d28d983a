"""Refusals that carry Xen's exact errno (issue 16), each against the Xen source it follows."""

from __future__ import annotations

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls.ops import DOMID_SELF
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.io import evtchn as ev
from pvsim.io import gnttab as gt
from pvsim.mm.host import add_domain_memory, attach_machine_memory

EVT, GNT = 32, 20


def make():
    hv = Hypervisor()
    attach_machine_memory(hv, 256)
    d0 = hv.add_domain(Domain(0, "dom0", "pv", "pv64", nr_vcpus=2, privileged=True))
    d1 = hv.add_domain(Domain(1, "guest", "pv", "pv64", nr_vcpus=2))
    d2 = hv.add_domain(Domain(2, "other", "pv", "pv64"))
    for d in (d0, d1, d2):
        add_domain_memory(hv, d, 16)
    return hv, d0, d1, d2


def mmuext(hv, dom, cmd, a1, a2):
    return hv.hypercall_by_name(dom.vcpus[0], "mmuext_op", [(cmd, a1, a2)], 1, None)


def test_set_ldt_bad_args_are_einval():
    # xen/arch/x86/mm.c do_mmuext_op, case MMUEXT_SET_LDT: "((ptr & (PAGE_SIZE - 1)) != 0) ||
    # !__addr_ok(ptr) || (ents > 8192)" -> -EINVAL; nr_ents is an unsigned int
    hv, _, d1, _ = make()
    assert mmuext(hv, d1, O.MMUEXT_SET_LDT, 0x10000, -1) == -E.EINVAL
    assert mmuext(hv, d1, O.MMUEXT_SET_LDT, 1 << 47, 16) == -E.EINVAL
    assert mmuext(hv, d1, O.MMUEXT_SET_LDT, 0x10000, 8193) == -E.EINVAL
    assert mmuext(hv, d1, O.MMUEXT_SET_LDT, 0x10001, 16) == -E.EINVAL
    # ents == 0 ignores the pointer ("ptr = ents ? op.arg1.linear_addr : 0")
    assert mmuext(hv, d1, O.MMUEXT_SET_LDT, 1 << 47, 0) == 0
    assert mmuext(hv, d1, O.MMUEXT_SET_LDT, 0x10000, 8192) == 0
    assert mmuext(hv, d1, O.MMUEXT_SET_LDT, O.HYPERVISOR_VIRT_END, 16) == 0


def test_query_size_of_another_domain_needs_privilege():
    # xen/common/grant_table.c gnttab_query_size: xsm_grant_query_size(XSM_TARGET, ...) fails
    # -> op.status = GNTST_permission_denied
    hv, d0, d1, _ = make()
    q = A.GnttabQuerySize(2)
    assert hv.hypercall(d1.vcpus[0], GNT, O.GNTTABOP_query_size, [q], 1) == 0
    assert q.status == O.GNTST_permission_denied
    for who, dom in ((d1, DOMID_SELF), (d1, 1), (d0, 2)):
        q = A.GnttabQuerySize(dom)
        assert hv.hypercall(who.vcpus[0], GNT, O.GNTTABOP_query_size, [q], 1) == 0
        assert q.status == O.GNTST_okay and q.max_nr_frames == gt.GNTTAB_MAX_FRAMES_DEFAULT


def test_map_grant_ref_with_domid_self_is_bad_domain():
    # xen/common/grant_table.c map_grant_ref: rcu_lock_domain_by_id(op->dom) == NULL ->
    # GNTST_bad_domain (by id: DOMID_SELF is no domain there)
    hv, _, d1, _ = make()
    ref = gt.gnttab_for(d1).grant_access(1, 0x55)
    m = A.GnttabMapGrantRef(0x1000, O.GNTMAP_host_map, ref, DOMID_SELF)
    assert hv.hypercall(d1.vcpus[0], GNT, O.GNTTABOP_map_grant_ref, [m], 1) == 0
    assert m.status == O.GNTST_bad_domain
    assert gt.gnttab_for(d1).maptrack == {}
    m = A.GnttabMapGrantRef(0x1000, O.GNTMAP_host_map, ref, 1)  # by its id it is a domain
    hv.hypercall(d1.vcpus[0], GNT, O.GNTTABOP_map_grant_ref, [m], 1)
    assert m.status == O.GNTST_okay


def test_alloc_unbound_remote_dom_is_a_16_bit_domid():
    # xen/include/public/event_channel.h: evtchn_alloc_unbound_t.remote_dom is a domid_t
    hv, _, d1, _ = make()
    a = A.EvtchnAllocUnbound(DOMID_SELF, 2 ** 70 + 2)
    assert hv.hypercall(d1.vcpus[0], EVT, O.EVTCHNOP_alloc_unbound, a) == 0
    assert ev.evtchn_for(d1).channels[a.port].remote_dom == 2
    st = A.EvtchnStatus(DOMID_SELF, a.port)
    assert hv.hypercall(d1.vcpus[0], EVT, O.EVTCHNOP_status, st) == 0
    assert st.u == {"unbound": {"dom": 2}}


def test_non_integer_hypercall_number_is_enosys():
    # xen/arch/x86/pv/hypercall.c: a number with no table entry -> -ENOSYS
    hv, _, d1, _ = make()
    for nr in ("x", 1.5, None, [1], True, 2 ** 70, -5):
        assert hv.hypercall(d1.vcpus[0], nr) == -E.ENOSYS
    mc = [A.MulticallEntry("x", [1, 2])]
    rc = hv.hypercall_by_name(d1.vcpus[0], "multicall", mc, 1)
    assert rc == -E.EFAULT or mc[0].result == -E.ENOSYS


def test_global_virq_moved_by_bind_vcpu_then_closed_leaves_no_stale_entry():
    # xen/common/event_channel.c evtchn_close, case ECS_VIRQ: for_each_vcpu, clear the
    # virq_to_evtchn slot that holds this port
    hv, d0, _, _ = make()
    b = A.EvtchnBindVirq(O.VIRQ_CONSOLE, 0)
    assert hv.hypercall(d0.vcpus[0], EVT, O.EVTCHNOP_bind_virq, b) == 0
    assert hv.hypercall(d0.vcpus[0], EVT, O.EVTCHNOP_bind_vcpu, A.EvtchnBindVcpu(b.port, 1)) == 0
    assert hv.hypercall(d0.vcpus[0], EVT, O.EVTCHNOP_close, A.EvtchnClose(b.port)) == 0
    assert ev.evtchn_for(d0).virq_to_port == {}
    # the port number is reused by an IPI: the VIRQ must not raise it
    ipi = A.EvtchnBindIpi(0)
    assert hv.hypercall(d0.vcpus[0], EVT, O.EVTCHNOP_bind_ipi, ipi) == 0
    assert ipi.port == b.port
    assert ev.send_virq(d0, O.VIRQ_CONSOLE) is False
    assert ev.evtchn_for(d0).pending[ipi.port] == 0
    b2 = A.EvtchnBindVirq(O.VIRQ_CONSOLE, 0)
    assert hv.hypercall(d0.vcpus[0], EVT, O.EVTCHNOP_bind_virq, b2) == 0  # not -EEXIST
    assert ev.send_virq(d0, O.VIRQ_CONSOLE) is True
    assert ev.evtchn_for(d0).pending[b2.port] == 1


def test_guest_grant_allocator_double_end_access_and_regrant_of_a_mapped_ref():
    # Linux drivers/xen/grant-table.c: gnttab_end_foreign_access_ref fails while the entry is
    # in use; a ref is freed once
    hv, d0, d1, _ = make()
    g = gt.gnttab_for(d1)
    r = g.grant_access(0, 0x77)
    assert g.end_access(r) is True
    assert g.end_access(r) is False  # double end_access refused, the ref freed once
    a, b = g.alloc_ref(), g.alloc_ref()
    assert a != b
    # a mapped grant cannot be re-granted over (that would clear GTF_writing)
    r = g.grant_access(0, 0x78)
    m = A.GnttabMapGrantRef(0x2000, O.GNTMAP_host_map, r, 1)
    hv.hypercall(d0.vcpus[0], GNT, O.GNTTABOP_map_grant_ref, [m], 1)
    assert m.status == O.GNTST_okay and g.flags[r] & O.GTF_writing
    assert g.grant_access(0, 0x99, ref=r) == -1
    assert g.flags[r] & O.GTF_writing and g.frame[r] == 0x78
    assert g.end_access(r) is False
    u = A.GnttabUnmapGrantRef(0x2000, 0, m.handle)
    hv.hypercall(d0.vcpus[0], GNT, O.GNTTABOP_unmap_grant_ref, [u], 1)
    assert u.status == O.GNTST_okay and g.end_access(r) is True
