"""The wide hostile campaign (issue 16): an attacker PV domain with two vCPUs, a victim, and a
privileged Domain-0 that maps the attacker's frames, driving mmu_update / mmuext_op /
update_va_mapping (tests/mm/hostile.py) and grant-table, event-channel, memory_op, vcpu_op and
multicall (nested and self-referencing) calls. Before each call an oracle predicts Xen's exact
result where the state before the call decides it; after each call the frame table is audited,
the victim's frames, ports and grants are compared with their snapshot, and the grant pins and
mappings must match one for one."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls import table as T
from hypercalls.ops import DOMID_SELF
from pvsim.core.engine import rng_for
from pvsim.hypervisor.domain import Domain
from pvsim.io import evtchn as ev
from pvsim.io import gnttab as gt
from pvsim.mm import x86 as C

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "mm"))
from hostile import World, build_address_space  # noqa: E402

from pvsim.mm.host import add_domain_memory  # noqa: E402

ATT, VIC, D0 = 1, 2, 0
NR_EVT, NR_GNT, NR_MC = T.number("event_channel_op"), T.number("grant_table_op"), T.number("multicall")
P, RW, US = C._PAGE_PRESENT, C._PAGE_RW, C._PAGE_USER
NO_PORT = 100  # ports the attacker names: 0..NO_PORT-1 (some never exist)


@dataclass
class Stats:
    calls: int = 0
    exact: int = 0
    by_family: dict = field(default_factory=dict)

    def add(self, fam: str, exact: bool) -> None:
        self.calls += 1
        self.exact += exact
        c, x = self.by_family.get(fam, (0, 0))
        self.by_family[fam] = (c + 1, x + exact)


class Campaign(World):
    def __init__(self, **kw):
        super().__init__(**kw)
        hv = self.hv
        self.att.vcpus  # two vCPUs (World)
        self.d0 = hv.add_domain(Domain(D0, "dom0", "pv", "pv64", privileged=True))
        add_domain_memory(hv, self.d0, 12)
        self.d0_tables = build_address_space(hv, self.d0, list(range(12)), 2)
        for d in (self.att, self.vic, self.d0):
            ev.evtchn_for(d)
            gt.gnttab_for(d)
        # the victim and dom0 offer ports (some to the attacker) and grants (some to the attacker)
        self.offered = []
        for owner in (self.vic, self.d0):
            for remote in (ATT, ATT, D0 if owner is self.vic else VIC, ATT):
                a = A.EvtchnAllocUnbound(DOMID_SELF, remote)
                assert hv.hypercall(owner.vcpus[0], NR_EVT, O.EVTCHNOP_alloc_unbound, a) == 0
                self.offered.append((owner.domid, a.port))
        vg = gt.gnttab_for(self.vic)
        self.vic_refs = [vg.grant_access(ATT, self.vic_frames[8 + i % 4], readonly=bool(i % 2)) for i in range(6)]
        self.vic_refs += [vg.grant_access(D0, self.vic_frames[12], readonly=False)]
        self.stats = Stats()
        self.vsnap_io = self._victim_io()

    # ------------------------------------------------------------------ victim's ports and grants
    def _victim_io(self):
        e = ev.evtchn_for(self.vic)
        g = gt.gnttab_for(self.vic)
        chans = [(c.state, c.remote_dom, c.notify_vcpu, c.virq) for c in e.channels]
        return chans, list(g.gdomid), list(g.frame), [f & ~(O.GTF_reading | O.GTF_writing) for f in g.flags]

    def _check_io(self, call):
        e = ev.evtchn_for(self.vic)
        now = self._victim_io()
        old = self.vsnap_io
        # only the remote end of a port the victim offered the attacker may change (bound/closed)
        for p, (a, b) in enumerate(zip(now[0], old[0])):
            if a != b:
                assert (VIC, p) in self.offered and old[0][p][1] == ATT or b[0] == O.EVTCHNSTAT_interdomain, \
                    (call, "victim port changed", p, a, b)
        assert len(e.channels) == len(old[0]), (call, "victim gained ports")
        assert now[1:] == old[1:], (call, "victim grants changed")
        # pins == mappings, flags follow the pins, no mapping of a grant not for its mapper
        g = gt.gnttab_for(self.vic)
        held: dict = {}
        for d in (self.att, self.d0, self.vic):
            for m in gt.gnttab_for(d).maptrack.values():
                if m.granter == VIC:
                    assert g.gdomid[m.ref] == d.domid, (call, "mapping of a grant not for the mapper")
                    k = held.setdefault(m.ref, [0, 0])
                    k[0 if m.flags & O.GNTMAP_readonly else 1] += 1
        for ref in set(held) | set(g.active):
            act = g.active.get(ref)
            r, w = held.get(ref, [0, 0])
            assert act is not None and (act.pin_read, act.pin_write) == (r, w), (call, "pins", ref, act, r, w)
            assert bool(g.flags[ref] & O.GTF_writing) == (w > 0), (call, "GTF_writing", ref)
            assert bool(g.flags[ref] & O.GTF_reading) == (r + w > 0), (call, "GTF_reading", ref)
        # every count exact: a domain's tot_pages is the frames it owns
        for d in (self.att, self.vic, self.d0):
            assert d.tot_pages == int(np.sum(self.mm.owner[: self.mm.nr_frames] == d.domid)), (call, "tot_pages", d.domid)

    # ------------------------------------------------------------------ calls
    NR_INTS = World.NR_INTS

    def decode_wide(self, x):
        x = list(x) + [0] * (self.NR_INTS - len(x))
        k = x[15] % 100
        vcpu = x[14] % 2
        if k < 18:
            return ("mm", vcpu, self.decode(x))
        if k < 22:
            return ("dom0_map", 0, x)
        if k < 47:
            return ("evtchn", vcpu, x)
        if k < 72:
            return ("gnttab", vcpu, x)
        if k < 82:
            return ("memory_op", vcpu, x)
        if k < 88:
            return ("vcpu_op", vcpu, x)
        return ("multicall", vcpu, x)

    def _dom(self, x):
        return [DOMID_SELF, ATT, VIC, D0, 9, 0x7FF0 + 5][x % 6]

    # event channels ------------------------------------------------------
    def _evtchn(self, x):
        """(cmd, record, predicted rc, predicted outs)."""
        ed = ev.evtchn_for(self.att)
        cmd = [O.EVTCHNOP_alloc_unbound, O.EVTCHNOP_bind_interdomain, O.EVTCHNOP_send, O.EVTCHNOP_close,
               O.EVTCHNOP_status, O.EVTCHNOP_bind_vcpu, O.EVTCHNOP_bind_ipi, O.EVTCHNOP_unmask][x[1] % 8]
        port = x[2] % NO_PORT
        valid = 0 <= port < len(ed.channels)
        st = ed.channels[port].state if valid else None
        if cmd == O.EVTCHNOP_alloc_unbound:
            dom = self._dom(x[3])
            rec = A.EvtchnAllocUnbound(dom, [ATT, VIC, D0, 2 ** 20 + VIC][x[4] % 4])
            if dom in (DOMID_SELF, ATT):
                return cmd, rec, 0 if len(ed.channels) < ed.max_port or self._free(ed) else None
            return cmd, rec, -E.ESRCH if dom not in (VIC, D0) else -E.EPERM
        if cmd == O.EVTCHNOP_bind_interdomain:
            rdom, rport = self.offered[x[3] % len(self.offered)]
            if x[4] % 4 == 0:
                rport = x[5] % 20
            if x[4] % 8 == 1:
                rdom = 9
            rec = A.EvtchnBindInterdomain(rdom, rport)
            if rdom not in (VIC, D0):
                return cmd, rec, -E.ESRCH
            red = ev.evtchn_for(self.hv.domains[rdom])
            if not red.port_is_valid(rport):
                return cmd, rec, -E.EINVAL
            rch = red.channels[rport]
            if rch.state != O.EVTCHNSTAT_unbound or rch.remote_dom != ATT:
                return cmd, rec, -E.EINVAL
            return cmd, rec, 0
        if cmd == O.EVTCHNOP_send:
            exp = -E.EINVAL if not valid or st not in (O.EVTCHNSTAT_interdomain, O.EVTCHNSTAT_ipi,
                                                       O.EVTCHNSTAT_unbound) else 0
            if valid and st == O.EVTCHNSTAT_interdomain and ed.channels[port].remote_dom not in self.hv.domains:
                exp = -E.EINVAL
            return cmd, A.EvtchnSend(port), exp
        if cmd == O.EVTCHNOP_close:
            exp = -E.EINVAL if not valid or st in (ev.ECS_RESERVED, O.EVTCHNSTAT_closed) else 0
            return cmd, A.EvtchnClose(port), exp
        if cmd == O.EVTCHNOP_status:
            dom = self._dom(x[3])
            rec = A.EvtchnStatus(dom, port)
            if dom not in (DOMID_SELF, ATT, VIC, D0):
                return cmd, rec, -E.ESRCH
            if dom in (VIC, D0):
                return cmd, rec, -E.EPERM
            return cmd, rec, 0 if valid else -E.EINVAL
        if cmd == O.EVTCHNOP_bind_vcpu:
            v = x[3] % 4
            rec = A.EvtchnBindVcpu(port, v)
            if v >= len(self.att.vcpus):
                return cmd, rec, -E.ENOENT
            if not valid:
                return cmd, rec, -E.EINVAL
            ch = ed.channels[port]
            if ch.state == O.EVTCHNSTAT_virq and ch.virq in O.VIRQ_PER_VCPU:
                return cmd, rec, -E.EINVAL
            ok = ch.state in (O.EVTCHNSTAT_unbound, O.EVTCHNSTAT_interdomain, O.EVTCHNSTAT_virq, O.EVTCHNSTAT_pirq)
            return cmd, rec, 0 if ok else -E.EINVAL
        if cmd == O.EVTCHNOP_bind_ipi:
            v = x[3] % 3
            rec = A.EvtchnBindIpi(v)
            return cmd, rec, -E.ENOENT if v >= len(self.att.vcpus) else 0
        return cmd, A.EvtchnUnmask(port), 0 if valid else -E.EINVAL  # evtchn_unmask

    @staticmethod
    def _free(ed):
        return any(c.state == O.EVTCHNSTAT_closed for c in ed.channels)

    # grants ---------------------------------------------------------------
    def _gnttab(self, x):
        """(cmd, ops, predicted rc, predicted statuses)."""
        kind = x[1] % 3
        if kind == 0:
            flags = [O.GNTMAP_host_map, O.GNTMAP_host_map | O.GNTMAP_readonly, 0, O.GNTMAP_device_map][x[2] % 4]
            addr = [0x1000 * (1 + x[3] % 50), 0][x[4] % 8 == 0]
            ref = self.vic_refs[x[5] % len(self.vic_refs)] if x[6] % 5 else x[7] % 600
            dom = [VIC, VIC, VIC, DOMID_SELF, 9, D0][x[8] % 6]
            op = A.GnttabMapGrantRef(addr, flags, ref, dom)
            return O.GNTTABOP_map_grant_ref, [op], 0, [self._map_status(op)]
        if kind == 1:
            lgt = gt.gnttab_for(self.att)
            hs = sorted(lgt.maptrack)
            h = hs[x[2] % len(hs)] if hs and x[3] % 4 else x[4] % 2000
            op = A.GnttabUnmapGrantRef(0, 0, h)
            return O.GNTTABOP_unmap_grant_ref, [op], 0, [O.GNTST_okay if h in lgt.maptrack else O.GNTST_bad_handle]
        dom = self._dom(x[2])
        op = A.GnttabQuerySize(dom)
        exp = (O.GNTST_okay if dom in (DOMID_SELF, ATT) else O.GNTST_permission_denied if dom in (VIC, D0)
               else O.GNTST_bad_domain)
        return O.GNTTABOP_query_size, [op], 0, [exp]

    def _map_status(self, op):
        if not op.flags & (O.GNTMAP_device_map | O.GNTMAP_host_map):
            return O.GNTST_bad_gntref
        if op.flags & O.GNTMAP_host_map and op.host_addr == 0:
            return O.GNTST_bad_virt_addr
        if op.dom not in self.hv.domains:
            return O.GNTST_bad_domain
        rgt = gt.gnttab_for(self.hv.domains[op.dom])
        if not 0 <= op.ref < rgt.nr_entries:
            return O.GNTST_bad_gntref
        fl = rgt.flags[op.ref]
        if (fl & O.GTF_type_mask) != O.GTF_permit_access or rgt.gdomid[op.ref] != ATT:
            return O.GNTST_permission_denied
        if fl & O.GTF_readonly and not op.flags & O.GNTMAP_readonly:
            return O.GNTST_permission_denied
        return O.GNTST_okay

    # memory_op, vcpu_op, multicall -----------------------------------------
    def _memory(self, x):
        k = x[1] % 3
        if k < 2:
            op = O.XENMEM_current_reservation if k == 0 else O.XENMEM_maximum_reservation
            dom = self._dom(x[2])
            rec = A.XenMemoryDomain(dom)
            d = {DOMID_SELF: self.att, ATT: self.att}.get(dom)
            if dom in (VIC, D0):
                return (op, rec), -E.EPERM
            if d is None:
                return (op, rec), -E.ESRCH
            return (op, rec), d.tot_pages if k == 0 else d.max_pages
        mfn = (self.vic_frames + list(self.d0.mm.p2m) + [self.mm.nr_frames + 3])[x[2] % (len(self.vic_frames) + 13)]
        rec = A.XenMemoryReservation(extent_start=[int(mfn)], nr_extents=1, extent_order=0, mem_flags=0, domid=0x7FF0)
        return (O.XENMEM_decrease_reservation, rec), 0  # a frame not the attacker's is never freed

    def _vcpu(self, x):
        vid = x[1] % 4
        if vid >= len(self.att.vcpus):
            return (O.VCPUOP_is_up, vid), -E.ENOENT
        return (O.VCPUOP_is_up, vid), 1 if self.att.vcpus[vid].online else 0

    def _multicall(self, x):
        """Entries whose results do not depend on each other, a nested and a self-referencing one."""
        entries, exp = [], []
        for j in range(1 + x[1] % 4):
            kind = x[2 + j] % 5
            if kind == 0:
                (op, rec), e = self._memory([0, x[6 + j] % 2, x[10 + j % 4]])
                entries.append(A.MulticallEntry(op=T.number("memory_op"), args=[op, rec]))
            elif kind == 1:
                (c, vid), e = self._vcpu([0, x[6 + j]])
                entries.append(A.MulticallEntry(op=T.number("vcpu_op"), args=[c, vid, None]))
            elif kind == 2:
                entries.append(A.MulticallEntry(op=NR_MC, args=[[A.MulticallEntry(op=T.number("vcpu_op"), args=[O.VCPUOP_is_up, 0, None])], 1]))
                e = -E.EINVAL  # "Multicall reentry is disallowed"
            elif kind == 3:
                entries.append(A.MulticallEntry(op=NR_MC, args=[entries, 1]))  # names its own list
                e = -E.EINVAL
            else:
                entries.append(A.MulticallEntry(op=12345, args=[0, None]))  # no such hypercall
                e = -E.ENOSYS
            exp.append(e)
        return entries, exp

    # ------------------------------------------------------------------ one step
    def wide_step(self, call):
        fam, vid, x = call
        hv, v = self.hv, self.att.vcpus[vid]
        exact = False
        if fam == "mm":
            exp = self.expected_refusal(x)
            rc = self.do_on(x, v)
            self.check(x, rc, exp)
            exact = exp is not None
        elif fam == "dom0_map":
            (l4, l3, l2, l1) = self.d0_tables
            tgt = self.pool[x[2] % len(self.pool)]
            fl = [P | US, P | RW | US, P | RW | US | C._PAGE_PSE][x[3] % 3]
            slot = 100 + x[4] % 40
            old = self.mm.read_entry(l1, slot)
            req = [((l1 << 12) | (slot * 8), C.make_pte(tgt, fl) if x[5] % 3 else 0)]
            fd = [ATT, ATT, 0x7FF0 + 9, DOMID_SELF][x[6] % 4]  # its own, the attacker's, or no domain
            rc = hv.hypercall_by_name(self.d0.vcpus[0], "mmu_update", req, 1, None, fd)
            self.check(("dom0_map", req, fd), rc, None)
            exp = None
            if fd not in (ATT, DOMID_SELF):
                exp = -E.ESRCH  # get_pg_owner: no such domain
            elif req[0][1] == 0:
                exp = 0  # clearing an entry of its own L1 always succeeds
            elif fl & C._PAGE_PSE:
                exp = -E.EINVAL  # L1_DISALLOW_MASK
            elif tgt < self.mm.nr_frames and self.mm.owner[tgt] not in (D0, ATT):
                exp = -E.EBUSY  # a victim frame: get_page_from_l1e's could_not_pin
            assert rc in (0, -E.EINVAL, -E.EBUSY, -E.EPERM, -E.ESRCH), (req, fd, rc)
            if exp is not None:
                assert rc == exp, (req, fd, rc, old)
            exact = exp is not None
        elif fam == "evtchn":
            cmd, rec, exp = self._evtchn(x)
            rc = hv.hypercall(v, NR_EVT, cmd, rec)
            if exp is not None:
                assert rc == exp, (cmd, rec, rc, exp)
            exact = exp is not None
        elif fam == "gnttab":
            cmd, ops, exp, sts = self._gnttab(x)
            rc = hv.hypercall(v, NR_GNT, cmd, ops, len(ops))
            assert rc == exp and [o.status for o in ops] == sts, (cmd, ops, rc, sts)
            exact = True
        elif fam == "memory_op":
            (op, rec), exp = self._memory(x)
            rc = hv.hypercall_by_name(v, "memory_op", op, rec)
            assert rc == exp, (op, rec, rc, exp)
            exact = True
        elif fam == "vcpu_op":
            (c, vid2), exp = self._vcpu(x)
            rc = hv.hypercall_by_name(v, "vcpu_op", c, vid2, None)
            assert rc == exp, (c, vid2, rc, exp)
            exact = True
        else:
            entries, exp = self._multicall(x)
            rc = hv.hypercall_by_name(v, "multicall", entries, len(entries))
            assert rc == 0, (entries, rc)
            for en, e in zip(entries, exp):
                if e is not None:
                    assert en.result == e, (en, e)
            exact = all(e is not None for e in exp)
        if fam != "mm":
            self.check(call, 0, None) if fam == "dom0_map" else self._audit_only(call)
        self._check_io(call)
        self.stats.add(fam, exact)

    def _audit_only(self, call):
        self.check(call, 0, None)

    def do_on(self, call, v):
        if call[0] == "mmu_update":
            done = [0]
            rc = self.hv.hypercall_by_name(v, "mmu_update", call[1], len(call[1]), done, call[2])
            assert 0 <= done[0] <= len(call[1])
            return rc
        if call[0] == "mmuext_op":
            return self.hv.hypercall_by_name(v, "mmuext_op", call[1], len(call[1]), None, call[2])
        return self.hv.hypercall_by_name(v, "update_va_mapping", *call[1:])


def run_campaign(n: int, seed: int = 2026) -> Stats:
    w = Campaign()
    rng = rng_for(seed, "hostile-campaign")
    for _ in range(n):
        w.wide_step(w.decode_wide(rng.integers(0, 1 << 30, size=w.NR_INTS).tolist()))
    return w.stats
