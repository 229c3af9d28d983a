"""Event channels (2-level) and grant tables (v1) through the hypercall interface."""

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls.ops import DOMID_SELF
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.io import evtchn as ev
from pvsim.io import gnttab as gt

EVT = 32
GNT = 20


def make():
    hv = Hypervisor()
    d0 = hv.add_domain(Domain(0, "dom0", "pv", "pv64", nr_vcpus=2, privileged=True))
    d1 = hv.add_domain(Domain(1, "guest", "pv", "pv64"))
    d2 = hv.add_domain(Domain(2, "other", "hvm", "hvm64"))
    return hv, d0, d1, d2


def connect(hv, front, back):
    a = A.EvtchnAllocUnbound(DOMID_SELF, back.domid)
    assert hv.hypercall(front.vcpus[0], EVT, O.EVTCHNOP_alloc_unbound, a) == 0
    b = A.EvtchnBindInterdomain(front.domid, a.port)
    assert hv.hypercall(back.vcpus[0], EVT, O.EVTCHNOP_bind_interdomain, b) == 0
    return a.port, b.local_port


def test_interdomain_bind_send_coalesce_and_upcall():
    hv, d0, d1, _ = make()
    kicked = []
    ev.evtchn_for(d0).on_kick = kicked.append
    fport, bport = connect(hv, d1, d0)
    assert fport >= 1 and bport >= 1  # port 0 is reserved
    # bind sets the local end pending (early sends are not lost)
    assert kicked == [0]
    assert ev.guest_upcall(d0, 0) == [bport]
    for _ in range(5):
        assert hv.hypercall(d1.vcpus[0], EVT, O.EVTCHNOP_send, A.EvtchnSend(fport)) == 0
    ed = ev.evtchn_for(d0)
    assert kicked == [0, 0] and ed.coalesced == 4  # five sends, one upcall
    assert ev.guest_upcall(d0, 0) == [bport]
    assert ev.guest_upcall(d0, 0) == []
    st = A.EvtchnStatus(DOMID_SELF, bport)
    assert hv.hypercall(d0.vcpus[0], EVT, O.EVTCHNOP_status, st) == 0
    assert st.status == O.EVTCHNSTAT_interdomain and st.u["interdomain"] == {"dom": 1, "port": fport}


def test_mask_then_unmask_reraises():
    hv, d0, d1, _ = make()
    kicked = []
    fport, bport = connect(hv, d1, d0)
    ev.guest_upcall(d0, 0)
    ev.evtchn_for(d0).on_kick = kicked.append
    ev.mask(d0, bport)
    hv.hypercall(d1.vcpus[0], EVT, O.EVTCHNOP_send, A.EvtchnSend(fport))
    assert kicked == [] and d0.vcpus[0].evtchn_upcall_pending == 0
    assert hv.hypercall(d0.vcpus[0], EVT, O.EVTCHNOP_unmask, A.EvtchnUnmask(bport)) == 0
    assert kicked == [0]
    assert ev.guest_upcall(d0, 0) == [bport]


def test_close_returns_peer_to_unbound_and_send_on_unbound_is_dropped():
    hv, d0, d1, _ = make()
    fport, bport = connect(hv, d1, d0)
    assert hv.hypercall(d0.vcpus[0], EVT, O.EVTCHNOP_close, A.EvtchnClose(bport)) == 0
    st = A.EvtchnStatus(DOMID_SELF, fport)
    hv.hypercall(d1.vcpus[0], EVT, O.EVTCHNOP_status, st)
    assert st.status == O.EVTCHNSTAT_unbound
    assert hv.hypercall(d1.vcpus[0], EVT, O.EVTCHNOP_send, A.EvtchnSend(fport)) == 0
    assert hv.hypercall(d0.vcpus[0], EVT, O.EVTCHNOP_close, A.EvtchnClose(bport)) == -E.EINVAL


def test_bad_calls_return_errno_and_do_not_touch_others():
    hv, d0, d1, d2 = make()
    v = d1.vcpus[0]
    assert hv.hypercall(v, EVT, O.EVTCHNOP_send, A.EvtchnSend(9999)) == -E.EINVAL
    assert hv.hypercall(v, EVT, O.EVTCHNOP_close, A.EvtchnClose(0)) == -E.EINVAL
    assert hv.hypercall(v, EVT, O.EVTCHNOP_alloc_unbound, A.EvtchnAllocUnbound(2, 0)) == -E.EPERM
    assert hv.hypercall(v, EVT, O.EVTCHNOP_alloc_unbound, A.EvtchnAllocUnbound(77, 0)) == -E.ESRCH
    assert hv.hypercall(v, EVT, O.EVTCHNOP_bind_virq, A.EvtchnBindVirq(O.NR_VIRQS, 0)) == -E.EINVAL
    assert hv.hypercall(v, EVT, O.EVTCHNOP_bind_virq, A.EvtchnBindVirq(O.VIRQ_CONSOLE, 3)) == -E.EINVAL
    assert hv.hypercall(v, EVT, O.EVTCHNOP_bind_ipi, A.EvtchnBindIpi(5)) == -E.ENOENT
    assert hv.hypercall(v, EVT, O.EVTCHNOP_send, "garbage") == -E.EFAULT
    assert hv.hypercall(v, EVT, 99, None) == -E.ENOSYS
    # binding to a port not offered to us
    a = A.EvtchnAllocUnbound(DOMID_SELF, 0)
    hv.hypercall(d2.vcpus[0], EVT, O.EVTCHNOP_alloc_unbound, a)
    assert hv.hypercall(v, EVT, O.EVTCHNOP_bind_interdomain, A.EvtchnBindInterdomain(2, a.port)) == -E.EINVAL
    assert ev.evtchn_for(d2).channels[a.port].state == O.EVTCHNSTAT_unbound
    r = A.EvtchnBindVirq(O.VIRQ_TIMER, 0)
    assert hv.hypercall(v, EVT, O.EVTCHNOP_bind_virq, r) == 0
    assert hv.hypercall(v, EVT, O.EVTCHNOP_bind_virq, A.EvtchnBindVirq(O.VIRQ_TIMER, 0)) == -E.EEXIST
    assert ev.send_virq(d1, O.VIRQ_TIMER, 0)


def test_port_exhaustion_enospc():
    hv, d0, d1, _ = make()
    d1.evtchn = ev.EvtchnDomain(1, max_port=3)
    for _ in range(3):
        assert hv.hypercall(d1.vcpus[0], EVT, O.EVTCHNOP_bind_ipi, A.EvtchnBindIpi(0)) == 0
    assert hv.hypercall(d1.vcpus[0], EVT, O.EVTCHNOP_bind_ipi, A.EvtchnBindIpi(0)) == -E.ENOSPC


def test_pv32_has_1024_ports():
    hv = Hypervisor()
    d = hv.add_domain(Domain(5, "g32", "pv32", "pv32"))
    assert ev.evtchn_for(d).nr_channels == 1024


# ------------------------------------------------------------------------- grants
def test_map_only_what_was_granted_and_unmap_flush_batching():
    hv, d0, d1, d2 = make()
    g1 = gt.gnttab_for(d1)
    refs = [g1.grant_access(0, 1000 + i) for i in range(40)]
    assert min(refs) >= O.GNTTAB_NR_RESERVED_ENTRIES
    ops = [A.GnttabMapGrantRef(0x1000 * (i + 1), O.GNTMAP_host_map, r, 1) for i, r in enumerate(refs)]
    assert hv.hypercall(d0.vcpus[0], GNT, O.GNTTABOP_map_grant_ref, ops, 40) == 0
    assert all(o.status == O.GNTST_okay for o in ops)
    assert g1.flags[refs[0]] & O.GTF_writing
    assert not g1.end_access(refs[0])  # cannot revoke while mapped
    # a domain the grant is not for may not map it
    bad = A.GnttabMapGrantRef(0x1000, O.GNTMAP_host_map, refs[0], 1)
    hv.hypercall(d2.vcpus[0], GNT, O.GNTTABOP_map_grant_ref, [bad], 1)
    assert bad.status == O.GNTST_permission_denied
    # never-granted ref and out-of-range ref
    for r, st in ((500, O.GNTST_permission_denied), (10**6, O.GNTST_bad_gntref)):
        o = A.GnttabMapGrantRef(0x1000, O.GNTMAP_host_map, r, 1)
        hv.hypercall(d0.vcpus[0], GNT, O.GNTTABOP_map_grant_ref, [o], 1)
        assert o.status == st
    un = [A.GnttabUnmapGrantRef(o.host_addr, 0, o.handle) for o in ops]
    with hv.metering(__import__("pvsim.core.meter", fromlist=["Meter"]).Meter()) as m:
        assert hv.hypercall(d0.vcpus[0], GNT, O.GNTTABOP_unmap_grant_ref, un, 40) == 0
    assert m.counts["grant.tlb_flush"] == 2  # 40 unmaps = batches of 32 + 8
    assert m.counts["grant.unmap"] == 40
    assert g1.end_access(refs[0]) and g1.flags[refs[0]] == 0
    again = A.GnttabUnmapGrantRef(0, 0, ops[0].handle)
    hv.hypercall(d0.vcpus[0], GNT, O.GNTTABOP_unmap_grant_ref, [again], 1)
    assert again.status == O.GNTST_bad_handle


def test_readonly_and_copy_rules():
    hv, d0, d1, d2 = make()
    g1 = gt.gnttab_for(d1)
    ro = g1.grant_access(0, 77, readonly=True)
    w = A.GnttabMapGrantRef(0x2000, O.GNTMAP_host_map, ro, 1)
    hv.hypercall(d0.vcpus[0], GNT, O.GNTTABOP_map_grant_ref, [w], 1)
    assert w.status == O.GNTST_permission_denied
    r = A.GnttabMapGrantRef(0x2000, O.GNTMAP_host_map | O.GNTMAP_readonly, ro, 1)
    hv.hypercall(d0.vcpus[0], GNT, O.GNTTABOP_map_grant_ref, [r], 1)
    assert r.status == O.GNTST_okay and g1.flags[ro] & O.GTF_reading
    rw = g1.grant_access(0, 78)
    P = A.GnttabCopyPtr
    ok = A.GnttabCopy(P(ref=rw, domid=1), P(gmfn=5, domid=DOMID_SELF), 1500, O.GNTCOPY_source_gref)
    into_ro = A.GnttabCopy(P(gmfn=5, domid=DOMID_SELF), P(ref=ro, domid=1), 100, O.GNTCOPY_dest_gref)
    cross = A.GnttabCopy(P(ref=rw, domid=1, offset=4000), P(gmfn=5, domid=DOMID_SELF), 200, O.GNTCOPY_source_gref)
    foreign = A.GnttabCopy(P(ref=rw, domid=1), P(gmfn=5, domid=DOMID_SELF), 10, O.GNTCOPY_source_gref)
    assert hv.hypercall(d0.vcpus[0], GNT, O.GNTTABOP_copy, [ok, into_ro, cross], 3) == 0
    assert (ok.status, into_ro.status, cross.status) == (0, O.GNTST_permission_denied, O.GNTST_bad_copy_arg)
    hv.hypercall(d2.vcpus[0], GNT, O.GNTTABOP_copy, [foreign], 1)
    assert foreign.status == O.GNTST_permission_denied
    assert hv.hypercall(d0.vcpus[0], GNT, O.GNTTABOP_copy, [ok], -1) == -E.EINVAL
    assert hv.hypercall(d0.vcpus[0], GNT, O.GNTTABOP_copy, ["x"], 1) == -E.EFAULT
    assert hv.hypercall(d0.vcpus[0], GNT, 42, [], 0) == -E.ENOSYS
    q = A.GnttabQuerySize(DOMID_SELF)
    assert hv.hypercall(d1.vcpus[0], GNT, O.GNTTABOP_query_size, [q], 1) == 0
    assert (q.nr_frames, q.max_nr_frames) == (1, 64)


def test_set_version_v1_only():
    hv, d0, d1, _ = make()
    v = d1.vcpus[0]
    assert hv.hypercall(v, GNT, O.GNTTABOP_set_version, [A.GnttabSetVersion(1)], 1) == 0
    assert hv.hypercall(v, GNT, O.GNTTABOP_set_version, [A.GnttabSetVersion(2)], 1) == -E.EOPNOTSUPP
    assert hv.hypercall(v, GNT, O.GNTTABOP_set_version, [A.GnttabSetVersion(7)], 1) == -E.EINVAL
    assert hv.hypercall(v, GNT, O.GNTTABOP_get_version, None, 1) == 1


def test_garbage_arguments_never_raise():
    hv, d0, d1, _ = make()
    v = d1.vcpus[0]
    assert hv.hypercall(v, EVT, [1], None) == -E.ENOSYS
    assert hv.hypercall(v, EVT, O.EVTCHNOP_send, A.EvtchnSend([3])) == -E.EFAULT
    assert hv.hypercall(v, EVT, O.EVTCHNOP_status, A.EvtchnStatus({}, 1)) == -E.EFAULT
    assert hv.hypercall(v, GNT, [5], [], 0) == -E.ENOSYS
    bad = A.GnttabCopy(A.GnttabCopyPtr(ref=[1]), A.GnttabCopyPtr(), 10, 0)
    assert hv.hypercall(v, GNT, O.GNTTABOP_copy, [bad], 1) == -E.EFAULT
    assert hv.hypercall(v, GNT, O.GNTTABOP_map_grant_ref, [A.GnttabMapGrantRef(0, 2, 8, "x")], 1) == -E.EFAULT
