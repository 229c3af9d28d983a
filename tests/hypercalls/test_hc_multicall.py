"""multicall really runs its entries, with per-entry results, in one guest->Xen transition."""

from __future__ import annotations

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls import table as T


def mc(name, *args):
    return A.MulticallEntry(op=T.number(name), args=list(args) + [0] * (6 - len(args)))


def test_multicall_runs_entries_with_results(hv, pvu):
    calls = [
        mc("stack_switch", 0xE02B, 0xFFFF880000004000),
        mc("fpu_taskswitch", 1),
        mc("xen_version", O.XENVER_version, None),
        mc("sched_op", 42),  # unknown sub-op
        mc("set_segment_base", O.SEGBASE_FS, 0x800000000000),  # non-canonical
    ]
    assert pvu("multicall", calls, len(calls)) == 0
    assert [c.result for c in calls] == [0, 0, (4 << 16) | 23, -E.ENOSYS, -E.EINVAL]
    assert pvu.vcpu.kernel_sp == 0xFFFF880000004000 and pvu.vcpu.fpu_ts
    # every entry is counted per domain and per number, errors included
    for name in ("multicall", "stack_switch", "fpu_taskswitch", "xen_version", "sched_op"):
        assert pvu.dom.hypercall_counts[name] == 1
        assert hv.calls[(1, T.number(name))] == 1
    assert pvu.dom.hypercall_errors[("sched_op", -E.ENOSYS)] == 1


def test_multicall_is_one_transition(hv, pvu):
    calls = [mc("stack_switch", 0xE02B, 0x1000), mc("fpu_taskswitch", 0), mc("fpu_taskswitch", 1)]
    assert pvu("multicall", calls, 3) == 0
    w = hv.meter.work
    entry = "xen.hypercall_entry_pv64_cycles"
    assert w[("hypercall.multicall", entry)] == 1
    assert ("hypercall.stack_switch", entry) not in w
    assert ("hypercall.fpu_taskswitch", entry) not in w
    assert w[("hypercall.multicall", "xen.multicall_entry_cycles")] == 3
    assert w[("hypercall.stack_switch", "xen.stack_switch_cycles")] == 1
    assert w[("hypercall.fpu_taskswitch", "xen.fpu_taskswitch_cycles")] == 2
    assert hv.meter.counts["hypercall.fpu_taskswitch"] == 2
    assert hv.meter.counts["multicall.entries"] == 3


def test_multicall_passes_as_many_args_as_the_prototype(pvu):
    """call_handlers_pv64() hands each handler its prototype's parameters, at most five."""
    from pvsim.hypervisor import hypervisor as H

    seen = []

    def spy(hv, vcpu, *args):
        seen.append(args)
        return 7

    saved = dict(H._HANDLERS)
    for name in ("console_io", "argo_op", "fpu_taskswitch"):
        H._HANDLERS[T.number(name)] = spy
    try:
        es = [A.MulticallEntry(op=T.number(n), args=[1, 2, 3, 4, 5, 6])
              for n in ("console_io", "argo_op", "fpu_taskswitch")]
        assert pvu("multicall", es, 3) == 0
    finally:
        H._HANDLERS.clear()
        H._HANDLERS.update(saved)
    assert seen == [(1, 2, 3), (1, 2, 3, 4, 5), (1,)]
    assert [e.result for e in es] == [7, 7, 7]


def test_multicall_reentry_is_einval_per_entry(hv, pvu):
    inner = [mc("fpu_taskswitch", 1)]
    inner[0].result = 123
    calls = [mc("multicall", inner, 1), mc("fpu_taskswitch", 0)]
    assert pvu("multicall", calls, 2) == 0
    assert calls[0].result == -E.EINVAL
    assert inner[0].result == 123  # the nested batch never ran
    assert hv.calls[(1, T.number("fpu_taskswitch"))] == 1
    assert hv.calls[(1, T.number("multicall"))] == 2
    assert calls[1].result == 0 and pvu.vcpu.fpu_ts is False
    # the flag is cleared afterwards: a new multicall works
    assert pvu("multicall", [mc("fpu_taskswitch", 1)], 1) == 0 and pvu.vcpu.fpu_ts


def test_multicall_faults(pvu):
    assert pvu("multicall", None, 1) == -E.EFAULT
    assert pvu("multicall", [mc("fpu_taskswitch", 1)], 2) == -E.EFAULT  # beyond the list
    assert pvu("multicall", [mc("fpu_taskswitch", 1)], None) == -E.EFAULT
    calls = [mc("fpu_taskswitch", 1), "junk", mc("fpu_taskswitch", 0)]
    assert pvu("multicall", calls, 3) == -E.EFAULT
    assert calls[0].result == 0 and pvu.vcpu.fpu_ts  # the first ran, the third did not
    bad_op = A.MulticallEntry(op=-1)
    assert pvu("multicall", [bad_op], 1) == -E.EFAULT
    assert pvu("multicall", [], 0) == 0


def test_multicall_iret_ends_the_batch(pvu):
    calls = [mc("fpu_taskswitch", 1), mc("iret", A.IretContext(rax=5, cs=3, rflags=1 << 9)),
             mc("fpu_taskswitch", 0)]
    assert pvu("multicall", calls, 3) == 5
    assert calls[1].result == 5 and pvu.vcpu.fpu_ts  # third entry never ran
    assert calls[2].result == 0 and pvu.dom.hypercall_counts["fpu_taskswitch"] == 1


def test_multicall_unknown_and_forbidden_entries(hv, hvm):
    calls = [mc("stack_switch", 0, 0), A.MulticallEntry(op=50), mc("xen_version", 0, None)]
    assert hvm("multicall", calls, 3) == 0
    assert [c.result for c in calls] == [-E.ENOSYS, -E.ENOSYS, (4 << 16) | 23]
    assert hvm.dom.hypercall_errors[("stack_switch", -E.ENOSYS)] == 1
    assert hv.meter.work[("hypercall.multicall", "hvm.vmexit_cycles")] == 1
    assert ("hypercall.xen_version", "hvm.vmexit_cycles") not in hv.meter.work
