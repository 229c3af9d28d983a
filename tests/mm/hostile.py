"""A hostile PV domain driving mmu_update / mmuext_op / update_va_mapping, and the checks after
every call (shared by the bulk random test and the Hypothesis test)."""

from __future__ import annotations

import numpy as np

from hypercalls import errno as E
from hypercalls import ops as O
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.mm import x86 as C
from pvsim.mm.audit import audit, maps_of
from pvsim.mm.host import add_domain_memory, attach_machine_memory

P, RW, US, A, D = C._PAGE_PRESENT, C._PAGE_RW, C._PAGE_USER, C._PAGE_ACCESSED, C._PAGE_DIRTY
FLAG_CHOICES = [P, P | RW, P | RW | US, P | US, P | RW | US | A | D, 0, P | C._PAGE_PSE,
                P | RW | C._PAGE_PSE, P | C._PAGE_GLOBAL, P | RW | C._PAGE_PCD, P | C._PAGE_NX,
                P | RW | (1 << 12), P | C._PAGE_GNTTAB, RW]
UVMF = [0, O.UVMF_TLB_FLUSH, O.UVMF_INVLPG, O.UVMF_ALL | O.UVMF_TLB_FLUSH, O.UVMF_ALL | O.UVMF_INVLPG,
        3, (1 << 2 + 1) | O.UVMF_TLB_FLUSH]
ALLOWED = {0, -E.EINVAL, -E.EBUSY, -E.EPERM, -E.ESRCH, -E.ENOSYS, -E.EFAULT, -E.EOPNOTSUPP, -E.EACCES}


def build_address_space(hv, dom, pfns, nr_data):
    """A PV guest builds L4->L3->L2->L1 + data pages with plain writes, then pins its L4."""
    p2m = dom.mm.p2m
    l4, l3, l2, l1 = (int(p2m[p]) for p in pfns[:4])
    reqs = [((l4 << 12), C.make_pte(l3, P | RW | US)), ((l3 << 12), C.make_pte(l2, P | RW | US)),
            ((l2 << 12), C.make_pte(l1, P | RW | US))]
    reqs += [((l1 << 12) | (i * 8), C.make_pte(int(p2m[pfns[4 + i]]), P | RW | US)) for i in range(nr_data)]
    v = dom.vcpus[0]
    assert hv.hypercall_by_name(v, "mmu_update", reqs, len(reqs), None) == 0
    assert hv.hypercall_by_name(v, "mmuext_op", [(O.MMUEXT_PIN_L4_TABLE, l4, 0)], 1, None) == 0
    assert hv.hypercall_by_name(v, "mmuext_op", [(O.MMUEXT_NEW_BASEPTR, l4, 0)], 1, None) == 0
    return l4, l3, l2, l1


class World:
    def __init__(self, *, linear_pt=False, preempt_every=0, attacker_pages=40):
        self.hv = Hypervisor()
        self.mm = attach_machine_memory(self.hv, 128, linear_pt=linear_pt, preempt_every=preempt_every)
        self.att = self.hv.add_domain(Domain(1, "attacker", "pv", "pv64", nr_vcpus=2))
        self.vic = self.hv.add_domain(Domain(2, "victim", "pv", "pv64"))
        add_domain_memory(self.hv, self.att, attacker_pages)
        add_domain_memory(self.hv, self.vic, 16)
        build_address_space(self.hv, self.att, list(range(attacker_pages)), 8)
        build_address_space(self.hv, self.vic, list(range(16)), 8)
        self.att_frames = [int(m) for m in self.att.mm.p2m]
        self.vic_frames = [int(m) for m in self.vic.mm.p2m]
        self.pool = self.att_frames * 3 + self.vic_frames + [0, self.mm.nr_frames - 1, self.mm.nr_frames + 5]
        self.vsnap = self._victim_state()

    def _victim_state(self):
        mm, f = self.mm, np.array(self.vic_frames)
        rows = [mm.entries(int(x)).copy() if mm.has_contents(int(x)) else None for x in f]
        return (mm.count[f].copy(), mm.type_count[f].copy(), mm.type[f].copy(), mm.owner[f].copy(), rows)

    # ------------------------------------------------------------------ random calls
    NR_INTS = 16

    def random_call(self, rng):
        return self.decode(rng.integers(0, 1 << 30, size=self.NR_INTS).tolist())

    def decode(self, x):
        """Turn ``NR_INTS`` non-negative integers into one hostile call (so Hypothesis can shrink)."""
        x = list(x) + [0] * (self.NR_INTS - len(x))
        pool = self.pool
        k = x[0] % 20
        if k < 11:
            n = 1 + x[1] % 3
            reqs = []
            for j in range(n):
                a, b, c = x[2 + 4 * j], x[3 + 4 * j], x[4 + 4 * j]
                frame = pool[a % len(pool)]
                idx = [0, 1, 2, 3, 5, 8, 256, 300, 511][(a >> 8) % 9]
                cmd = [0, 0, 0, 0, 0, 0, 2, 3, 1, 5][(a >> 12) % 10]
                tgt = pool[b % len(pool)]
                fl = FLAG_CHOICES[(b >> 8) % len(FLAG_CHOICES)]
                val = C.make_pte(tgt, fl) if cmd != 1 else c % 64
                reqs.append(((frame << 12) | (idx * 8) | cmd, val))
            fd = [0x7FF0] * 12 + [2, 1, 9, 0x7FF1, (3 << 16) | 0x7FF0, (2 << 16) | 0x7FF0][: 6]
            return ("mmu_update", reqs, fd[x[15] % len(fd)])
        if k < 15:
            cmds = [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21]
            cmd = cmds[x[1] % len(cmds)]
            a1 = pool[x[2] % len(pool)]
            a2 = [0, 1, 3, 4, pool[x[4] % len(pool)]][x[3] % 5]
            if cmd == 5 and x[5] % 2:
                a1 = self.att.mm.p2m[0]  # back to the original address space
            return ("mmuext_op", [(cmd, int(a1), int(a2))], [0x7FF0, 0x7FF0, 0x7FF0, 2][x[6] % 4])
        if k == 15:  # repair the attacker's own address-space spine (a valid batch)
            p2m = self.att.mm.p2m
            l4, l3, l2, l1 = (int(p2m[i]) for i in range(4))
            return ("mmu_update", [((l4 << 12), C.make_pte(l3, P | RW | US)), ((l3 << 12), C.make_pte(l2, P | RW | US)),
                                   ((l2 << 12), C.make_pte(l1, P | RW | US))], 0x7FF0)
        va = [0, 1, 2, 3, 4, 5, 6, 7, 9, 100, 511, 512, 1 << 27][x[1] % 13] << 12
        tgt = pool[x[2] % len(pool)]
        fl = FLAG_CHOICES[x[3] % len(FLAG_CHOICES)]
        return ("update_va_mapping", va, C.make_pte(tgt, fl), UVMF[x[4] % len(UVMF)])

    # ------------------------------------------------------------------ oracle
    def expected_refusal(self, call):
        """The errno Xen must return, when it can be told from the state before the call."""
        mm = self.mm
        if call[0] == "mmu_update" and len(call[1]) == 1 and (call[2] & 0xFFFF) == 0x7FF0 and not call[2] >> 16:
            ptr, val = call[1][0]
            cmd, frame = ptr & 7, ptr >> 12
            if cmd >= 4:
                return -E.ENOSYS
            owned = frame < mm.nr_frames and mm.owner[frame] == 1
            if not owned:
                return -E.EINVAL
            if cmd == 1:
                return None
            t = int(mm.type[frame])
            inuse = mm.type_count[frame] > 0 and mm.validated[frame]
            f = C.get_pte_flags(val)
            if inuse and t == 1 and f & P:
                if f & C.L1_DISALLOW_MASK:
                    return -E.EINVAL
                old = mm.read_entry(frame, (ptr & 0xFFF) >> 3)
                if C.pte_has_changed(old, val, ~C.FASTPATH_FLAG_WHITELIST & 0xFFFFFF):
                    tgt = C.pte_mfn(val)
                    if tgt >= mm.nr_frames:
                        return -E.EPERM
                    if mm.owner[tgt] != 1:
                        return -E.EBUSY
            if inuse and 2 <= t <= 4 and f & P and f & C._PAGE_PSE:
                return -E.EINVAL
            if inuse and t == 4 and not C.is_guest_l4_slot((ptr & 0xFFF) >> 3):
                return -E.EINVAL
        if call[0] == "mmuext_op" and call[2] == 0x7FF0:
            cmd, a1, _ = call[1][0]
            if cmd in (14, 21) or cmd > 20:
                return -E.ENOSYS
            if cmd in (0, 1, 2, 3, 4) and not (a1 < mm.nr_frames and mm.owner[a1] == 1):
                return -E.EINVAL
            if cmd in (0, 1, 2, 3) and mm.pinned[a1]:
                return -E.EINVAL
            if cmd == 4 and not mm.pinned[a1]:
                return -E.EINVAL
        if call[0] == "update_va_mapping":
            if mm.pv.guest_l1e_slot(self.att.mm, 0, call[1]) is None:
                return -E.EINVAL
        return None

    def do(self, call):
        v = self.att.vcpus[0]
        if call[0] == "mmu_update":
            done = [0]
            rc = self.hv.hypercall_by_name(v, "mmu_update", call[1], len(call[1]), done, call[2])
            assert 0 <= done[0] <= len(call[1])
            assert (rc == 0) == (done[0] == len(call[1])) or rc != 0
        elif call[0] == "mmuext_op":
            rc = self.hv.hypercall_by_name(v, "mmuext_op", call[1], len(call[1]), None, call[2])
        else:
            rc = self.hv.hypercall_by_name(v, "update_va_mapping", *call[1:])
        return rc

    def check(self, call, rc, expected):
        assert rc in ALLOWED, (call, rc)
        if expected is not None:
            assert rc == expected, (call, rc, expected)
        problems = audit(self.mm)
        assert not problems, (call, rc, problems)
        mapped = maps_of(self.mm, 1)
        assert np.all(self.mm.owner[mapped[mapped < self.mm.nr_frames]] == 1), (call, mapped)
        snap = self._victim_state()
        for a, b in zip(snap[:4], self.vsnap[:4]):
            assert np.array_equal(a, b), (call, "victim frame table changed")
        for a, b in zip(snap[4], self.vsnap[4]):
            assert (a is None and b is None) or np.array_equal(a, b), (call, "victim contents changed")

    def step(self, call):
        exp = self.expected_refusal(call)
        rc = self.do(call)
        self.check(call, rc, exp)
        return rc
