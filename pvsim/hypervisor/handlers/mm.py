"""Handlers of the PV memory-management hypercalls (after ``xen/arch/x86/mm.c``).

Design note
-----------
``do_mmu_update``, ``do_update_va_mapping`` and ``do_mmuext_op`` unpack the guest's arguments
and call :class:`pvsim.mm.pv.DirectPaging` on the host's frame table (``hv.machine_mm``) and the
caller's per-domain memory state (``dom.mm``, a :class:`pvsim.mm.frames.DomainMM`). Arguments:

* ``do_mmu_update(hv, vcpu, reqs, count, pdone=None, foreigndom=DOMID_SELF)``: ``reqs`` is a
  sequence of ``mmu_update_t`` records (objects with ``ptr`` and ``val``, or ``(ptr, val)`` pairs,
  or an ``(n, 2)`` integer array); ``pdone`` (OUT) receives the number of requests processed
  (an object with a ``value`` or ``done`` attribute, or a one-element list).
* ``do_update_va_mapping(hv, vcpu, va, val, flags)``.
* ``do_mmuext_op(hv, vcpu, ops, count, pdone=None, foreigndom=DOMID_SELF)``: ``ops`` holds
  ``mmuext_op_t`` records (``cmd``, ``arg1``, ``arg2``; or ``mfn``/``linear_addr`` for arg1 and
  ``nr_ents``/``vcpumask``/``src_mfn`` for arg2) or ``(cmd, arg1, arg2)`` tuples.

A long ``mmu_update`` batch is preempted every ``machine_mm.preempt_every`` elements: each
continuation re-enters Xen, charged at the caller's hypercall entry price and counted as
``hypercall_continuation.mmu_update``.

Simplifications: ``mmuext_op`` is not preempted; a malformed argument list is ``-EFAULT``.
"""

from __future__ import annotations

from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls.ops import DOMID_SELF, RUNSTATE_running
from pvsim.hypervisor.dispatch import ENTRY_PRICE, handler
from pvsim.mm.pv import direct_paging


def _ctx(hv, vcpu):
    mm = hv.machine_mm
    dmm = vcpu.domain.mm
    if mm is None or dmm is None:
        return None
    direct_paging(mm).meter = hv.meter
    dmm.running = [bool(v.online and v.runstate == RUNSTATE_running) for v in vcpu.domain.vcpus]
    return mm, dmm


def _pairs(reqs, count):
    try:
        n = int(count)
        if n < 0 or n > len(reqs):
            return None
        out = []
        for r in list(reqs[:n]) if not hasattr(reqs, "shape") else reqs[:n]:
            if hasattr(r, "ptr"):
                out.append((int(r.ptr), int(r.val)))
            else:
                p, v = r
                out.append((int(p), int(v)))
        return out
    except (TypeError, ValueError):
        return None


def _set_done(pdone, n):
    if pdone is None:
        return
    if isinstance(pdone, list):
        if pdone:
            pdone[0] = n
        else:
            pdone.append(n)
    elif hasattr(pdone, "done"):
        pdone.done = n
    else:
        try:
            pdone.value = n
        except AttributeError:
            pass


def _ext(op):
    if hasattr(op, "cmd"):
        a1 = next((getattr(op, k) for k in ("arg1", "mfn", "linear_addr") if getattr(op, k, None) is not None), 0)
        a2 = next((getattr(op, k) for k in ("arg2", "nr_ents", "vcpumask", "src_mfn")
                   if getattr(op, k, None) is not None), 0)
        return int(op.cmd), int(a1), int(a2)
    cmd, a1, *rest = op
    return int(cmd), int(a1), int(rest[0]) if rest else 0


@handler("mmu_update")
def do_mmu_update(hv, vcpu, reqs=None, count=0, pdone=None, foreigndom=DOMID_SELF) -> int:
    ctx = _ctx(hv, vcpu)
    if ctx is None:
        return -E.ENOSYS
    mm, dmm = ctx
    try:
        count = int(count) & ~O.MMU_UPDATE_PREEMPTED
        foreigndom = int(foreigndom)
    except (TypeError, ValueError):
        return -E.EFAULT
    pairs = _pairs(reqs if reqs is not None else [], count)
    if pairs is None:
        return -E.EFAULT
    rc, done = mm.pv.mmu_update(dmm, vcpu.vcpu_id, pairs, foreigndom, mm.domains)
    for _ in range(mm.pv.continuations):
        for price in ENTRY_PRICE.get(vcpu.domain.guest_type, ()):
            hv.meter.add("hypercall.mmu_update", price)
        hv.meter.count("hypercall_continuation.mmu_update")
    _set_done(pdone, done)
    return rc


@handler("update_va_mapping")
def do_update_va_mapping(hv, vcpu, va=0, val=0, flags=0, *compat) -> int:
    """``update_va_mapping(va, val, flags)``; a 32-bit PV caller passes the 64-bit PTE in two
    registers (``va, lo, hi, flags``: compat_update_va_mapping in xen/arch/x86/pv/mm.c)."""
    ctx = _ctx(hv, vcpu)
    if ctx is None:
        return -E.ENOSYS
    mm, dmm = ctx
    try:
        if compat and vcpu.domain.guest_type == "pv32":
            va, val, flags = int(va), (int(val) & 0xFFFFFFFF) | ((int(flags) & 0xFFFFFFFF) << 32), int(compat[0])
        else:
            va, val, flags = int(va), int(val), int(flags)
    except (TypeError, ValueError):
        return -E.EFAULT
    return mm.pv.update_va_mapping(dmm, vcpu.vcpu_id, va, val, flags)


@handler("mmuext_op")
def do_mmuext_op(hv, vcpu, ops=None, count=0, pdone=None, foreigndom=DOMID_SELF) -> int:
    ctx = _ctx(hv, vcpu)
    if ctx is None:
        return -E.ENOSYS
    mm, dmm = ctx
    if not vcpu.domain.is_pv:
        return -E.ENOSYS  # HVM guests: only the flush ops exist; not modelled
    try:
        n = int(count)
        fd = int(foreigndom)
        if n < 0 or n > len(ops or []):
            return -E.EFAULT
        items = [_ext(o) for o in list(ops)[:n]]
    except (TypeError, ValueError):
        return -E.EFAULT
    if fd != DOMID_SELF:  # get_pg_owner(): itself/unknown -ESRCH; a foreign owner fails XSM
        if fd == dmm.domid or fd not in mm.domains:
            return -E.ESRCH
        if not dmm.privileged:
            return -E.EPERM
        return -E.EOPNOTSUPP  # privileged foreign pinning (domain builder) not modelled
    rc = 0
    done = 0
    for cmd, a1, a2 in items:
        rc = mm.pv.mmuext_op(dmm, vcpu.vcpu_id, cmd, a1, a2)
        if rc:
            break
        done += 1
    _set_done(pdone, done)
    return rc
