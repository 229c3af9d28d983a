"""Credit1's accounting pass (``csched_acct``) over struct-of-arrays state: reference and Numba kernel.

Design note
-----------
Models ``csched_acct()`` in ``xen/common/sched/credit.c`` step for step: the credit of one
accounting period (``prv->credit`` = ``credits_per_tslice`` x ncpus, plus the negative balance of
the last period, "converge balance towards 0"), shared among the *active* domains by weight
(``credit_fair``, rounded up), bounded by ``credit_peak`` (active vCPUs x ``credits_per_tslice``)
and by the cap; what a bounded domain cannot take goes to those after it (``weight_left``); a
domain with spare credit is moved to the head of the active list (``credit_xtra``). Then per
active vCPU: add the per-vCPU share; ``credit < 0`` -> ``OVER``, park when capped and below
``-credit_cap``, clamp at ``-credits_per_tslice``; else ``UNDER``, unpark, and above
``credits_per_tslice`` leave the active list with the credit halved. ``credit_balance`` is the sum
of the active vCPUs' credits after the pass.

Layout (all int64): ``ustate[4, n]`` = rows ``credit, pri, flags, dom`` per unit (flags bit 0 =
on the active list, bit 1 = PARKED; other bits pass through); ``dstate[3, nd]`` = rows ``weight,
cap, active_unit_count`` per domain; ``dom_order[nd]`` = the active-domain list in order, padded
with -1; ``params = [n_order, credits_per_tslice, prv_credit, prv_credit_balance, prv_weight]``.
``out`` (length :func:`out_size`) receives ``credit[n], pri[n], flags[n], active_unit_count[nd]``,
the new active-domain order (padded with -1), then 8 scalars: ``credit_balance, prv_weight,
issued, clamp_added, halving_removed, n_order, parks, unparks``.

The kernel works in two passes: the domain loop (in active-list order, since ``credit_total``
grows as bounded domains give back) computes each domain's per-vCPU share, then one pass over
the units applies it; the reference follows the C nesting (domains, then each domain's vCPUs).

Simplifications: none in the arithmetic (C's unsigned 32-bit ops are exact here because values
stay small); locks and statistics counters are not modelled.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pvsim.core import kernels

CSCHED_PRI_TS_BOOST = 0
CSCHED_PRI_TS_UNDER = -1
CSCHED_PRI_TS_OVER = -2
CSCHED_PRI_IDLE = -64
FLAG_ACTIVE = 1
FLAG_PARKED = 2
N_SCALARS = 8


def out_size(n_units: int, n_doms: int) -> int:
    return 3 * n_units + 2 * n_doms + N_SCALARS


def csched_acct_ref(ustate, dstate, dom_order, params, out):
    """Plain-Python reference: the C loop of ``csched_acct`` written out over lists."""
    n = ustate.shape[1]
    nd = dstate.shape[1]
    cr = [int(x) for x in ustate[0]]
    pr = [int(x) for x in ustate[1]]
    fl = [int(x) for x in ustate[2]]
    udom = [int(x) for x in ustate[3]]
    weight = [int(x) for x in dstate[0]]
    capv = [int(x) for x in dstate[1]]
    act = [int(x) for x in dstate[2]]
    n_order, cpt, prv_credit, bal_prev, prv_weight = (int(x) for x in params[:5])
    order = [int(dom_order[i]) for i in range(n_order)]
    members: dict[int, list[int]] = {d: [] for d in order}  # each domain's vCPUs (its active_unit list)
    for u in range(n):
        if udom[u] in members:
            members[udom[u]].append(u)
    weight_total = prv_weight
    credit_total = prv_credit
    new_weight = weight_total
    issued = clamp_added = halving_removed = parks = unparks = 0
    if bal_prev < 0:
        credit_total -= bal_prev
    credit_balance = 0
    new_order = order
    if weight_total != 0:
        weight_left = weight_total
        credit_xtra = False
        credit_cap = 0
        moved_to_head: list[int] = []
        for d in order:
            w, ac, cap = weight[d], act[d], capv[d]
            weight_left -= w * ac
            credit_peak = ac * cpt
            if bal_prev < 0:
                credit_peak += (-bal_prev * w * ac + weight_total - 1) // weight_total
            if cap != 0:
                credit_cap = (cap * cpt + 99) // 100
                credit_peak = min(credit_peak, credit_cap)
                credit_cap = (credit_cap + ac - 1) // ac
            credit_fair = (credit_total * w * ac + weight_total - 1) // weight_total
            if credit_fair < credit_peak:
                credit_xtra = True
            else:
                if weight_left != 0:
                    credit_total += ((credit_fair - credit_peak) * weight_total + weight_left - 1) // weight_left
                if credit_xtra:
                    moved_to_head.append(d)
                credit_fair = credit_peak
            credit_fair = (credit_fair + ac - 1) // ac
            for u in members[d]:
                if not fl[u] & FLAG_ACTIVE:
                    continue
                cr[u] += credit_fair
                issued += credit_fair
                c = cr[u]
                if c < 0:
                    pr[u] = CSCHED_PRI_TS_OVER
                    if cap != 0 and c < -credit_cap and not fl[u] & FLAG_PARKED:
                        fl[u] |= FLAG_PARKED
                        parks += 1
                    if c < -cpt:
                        clamp_added += -cpt - c
                        c = -cpt
                        cr[u] = c
                else:
                    pr[u] = CSCHED_PRI_TS_UNDER
                    if fl[u] & FLAG_PARKED:
                        fl[u] &= ~FLAG_PARKED
                        unparks += 1
                    if c > cpt:
                        fl[u] &= ~FLAG_ACTIVE
                        act[d] -= 1
                        new_weight -= w
                        halving_removed += c - c // 2
                        c //= 2
                        cr[u] = c
                credit_balance += c
        new_order = [d for d in reversed(moved_to_head)] + [d for d in order if d not in moved_to_head]
        new_order = [d for d in new_order if act[d] > 0]
    out[0:n] = cr
    out[n:2 * n] = pr
    out[2 * n:3 * n] = fl
    out[3 * n:3 * n + nd] = act
    base = 3 * n + nd
    for i in range(nd):
        out[base + i] = new_order[i] if i < len(new_order) else -1
    s = base + nd
    out[s:s + N_SCALARS] = [credit_balance, new_weight, issued, clamp_added, halving_removed,
                            len(new_order), parks, unparks]


@njit(cache=True)
def _csched_acct_kernel(ustate, dstate, dom_order, params, out):
    n = ustate.shape[1]
    nd = dstate.shape[1]
    base = 3 * n + nd
    n_order = params[0]
    cpt = params[1]
    weight_total = params[4]
    credit_total = params[2]
    bal_prev = params[3]
    if bal_prev < 0:
        credit_total -= bal_prev
    for d in range(nd):
        out[3 * n + d] = dstate[2, d]
    new_weight = weight_total
    issued = 0
    clamp_added = 0
    halving_removed = 0
    parks = 0
    unparks = 0
    credit_balance = 0
    # pass 1: the domains, in active-list order
    fair = np.zeros(nd, np.int64)  # per-vCPU share
    capu = np.zeros(nd, np.int64)  # per-vCPU cap (credit_cap after division)
    listed = np.zeros(nd, np.bool_)
    moved = np.full(nd, -1, np.int64)
    seq = np.empty(max(n_order, 1), np.int64)
    n_moved = 0
    if weight_total != 0:
        weight_left = weight_total
        credit_xtra = False
        credit_cap = 0
        for i in range(n_order):
            d = dom_order[i]
            listed[d] = True
            w = dstate[0, d]
            ac = dstate[2, d]
            cap = dstate[1, d]
            weight_left -= w * ac
            credit_peak = ac * cpt
            if bal_prev < 0:
                credit_peak += (-bal_prev * w * ac + weight_total - 1) // weight_total
            if cap != 0:
                credit_cap = (cap * cpt + 99) // 100
                if credit_cap < credit_peak:
                    credit_peak = credit_cap
                credit_cap = (credit_cap + ac - 1) // ac
            capu[d] = credit_cap
            credit_fair = (credit_total * w * ac + weight_total - 1) // weight_total
            if credit_fair < credit_peak:
                credit_xtra = True
            else:
                if weight_left != 0:
                    credit_total += ((credit_fair - credit_peak) * weight_total + weight_left - 1) // weight_left
                if credit_xtra:
                    moved[d] = n_moved
                    seq[n_moved] = d
                    n_moved += 1
                credit_fair = credit_peak
            fair[d] = (credit_fair + ac - 1) // ac
    # pass 2: the units
    for u in range(n):
        c = ustate[0, u]
        p = ustate[1, u]
        f = ustate[2, u]
        d = ustate[3, u]
        if weight_total != 0 and (f & FLAG_ACTIVE) != 0 and listed[d]:
            cf = fair[d]
            c += cf
            issued += cf
            cap = dstate[1, d]
            if c < 0:
                p = CSCHED_PRI_TS_OVER
                if cap != 0 and c < -capu[d] and (f & FLAG_PARKED) == 0:
                    f |= FLAG_PARKED
                    parks += 1
                if c < -cpt:
                    clamp_added += -cpt - c
                    c = -cpt
            else:
                p = CSCHED_PRI_TS_UNDER
                if (f & FLAG_PARKED) != 0:
                    f &= ~FLAG_PARKED
                    unparks += 1
                if c > cpt:
                    f &= ~FLAG_ACTIVE
                    out[3 * n + d] -= 1
                    new_weight -= dstate[0, d]
                    halving_removed += c - c // 2
                    c //= 2
            credit_balance += c
        out[u] = c
        out[n + u] = p
        out[2 * n + u] = f
    # the new active-domain order: moved domains (latest move first), then the others; drop emptied
    k = 0
    if weight_total != 0:
        for j in range(n_moved - 1, -1, -1):
            d = seq[j]
            if out[3 * n + d] > 0:
                out[base + k] = d
                k += 1
        for i in range(n_order):
            d = dom_order[i]
            if moved[d] < 0 and out[3 * n + d] > 0:
                out[base + k] = d
                k += 1
    else:
        for i in range(n_order):
            out[base + k] = dom_order[i]
            k += 1
    for i in range(k, nd):
        out[base + i] = -1
    s = base + nd
    out[s] = credit_balance
    out[s + 1] = new_weight
    out[s + 2] = issued
    out[s + 3] = clamp_added
    out[s + 4] = halving_removed
    out[s + 5] = k
    out[s + 6] = parks
    out[s + 7] = unparks


def csched_acct(ustate, dstate, dom_order, params, out=None, *, reference: bool = False):
    """Validate, allocate ``out`` if needed, and run the kernel (or the reference)."""
    if ustate.ndim != 2 or ustate.shape[0] != 4 or dstate.ndim != 2 or dstate.shape[0] != 3:
        raise ValueError("csched_acct: ustate must be int64[4, n] and dstate int64[3, nd]")
    n, nd = ustate.shape[1], dstate.shape[1]
    if len(dom_order) != nd or len(params) < 5 or not 0 <= params[0] <= nd:
        raise ValueError("csched_acct: inconsistent dom_order / params")
    if out is None:
        out = np.empty(out_size(n, nd), dtype=np.int64)
    (csched_acct_ref if reference else _csched_acct_kernel)(ustate, dstate, dom_order, params, out)
    return out


def random_case(rng, n_doms: int, max_vcpus: int = 4, cpt: int = 300, ncpus: int = 4):
    """A random but consistent credit1 state (used by the equivalence and property tests)."""
    per = rng.integers(1, max_vcpus + 1, size=n_doms)
    n = int(per.sum())
    udom = np.repeat(np.arange(n_doms), per).astype(np.int64)
    rng.shuffle(udom)
    credit = rng.integers(-2 * cpt, 2 * cpt, size=n).astype(np.int64)
    flags = (rng.random(n) < 0.8).astype(np.int64) | ((rng.random(n) < 0.2).astype(np.int64) << 1)
    flags |= (rng.random(n) < 0.1).astype(np.int64) << 3  # an unrelated flag bit passes through
    pri = np.where(credit < 0, CSCHED_PRI_TS_OVER, CSCHED_PRI_TS_UNDER).astype(np.int64)
    ustate = np.ascontiguousarray(np.stack([credit, pri, flags, udom]).astype(np.int64))
    weight = rng.integers(1, 1024, size=n_doms).astype(np.int64)
    cap = np.where(rng.random(n_doms) < 0.3, rng.integers(1, 100 * ncpus + 1, size=n_doms), 0).astype(np.int64)
    active = np.bincount(udom[(flags & FLAG_ACTIVE) != 0], minlength=n_doms).astype(np.int64)
    dstate = np.ascontiguousarray(np.stack([weight, cap, active]).astype(np.int64))
    act_doms = [d for d in range(n_doms) if active[d] > 0]
    rng.shuffle(act_doms)
    dom_order = np.full(n_doms, -1, dtype=np.int64)
    dom_order[:len(act_doms)] = act_doms
    prv_weight = int(sum(weight[d] * active[d] for d in act_doms))
    balance = int(rng.integers(-3 * cpt, 3 * cpt))
    params = np.array([len(act_doms), cpt, cpt * ncpus, balance, prv_weight], dtype=np.int64)
    return ustate, dstate, dom_order, params


def _cases(rng):
    for nd in (1, 2, 3, 8, 40, 128):
        for _ in range(4):
            args = random_case(rng, nd)
            yield args + (np.zeros(out_size(args[0].shape[1], nd), dtype=np.int64),)
    # edge: nobody active (weight_total == 0)
    ustate, dstate, dom_order, params = random_case(rng, 3)
    ustate[2] &= ~FLAG_ACTIVE
    dstate[2] = 0
    dom_order[:] = -1
    params[0] = 0
    params[4] = 0
    yield ustate, dstate, dom_order, params, np.zeros(out_size(ustate.shape[1], 3), dtype=np.int64)


kernels.register("csched_acct", kernel=_csched_acct_kernel, reference=csched_acct_ref, cases=_cases)
