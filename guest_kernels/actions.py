"""The OS actions a workload may ask a guest kernel for: the interface between workloads and kernels.

Design note
-----------
A workload's op mix names actions from :data:`ACTIONS`; every :class:`~guest_kernels.base.GuestKernel`
implements them (a test checks it). Each entry gives the arguments the action takes, so a workload
file with a misspelled action or a wrong argument is refused before anything runs. Two kinds are
not kernel methods:

* ``fill``: the kernel path length an op's other actions do not describe, derived from the op's
  native reference latency (see :mod:`pvsim.workloads.spec`);
* the *device* actions ``disk_io`` and ``net_io``: a scenario run performs them on the domain's
  real devices (rings, event channels, grants, backends, the device model), not by pricing.

This module is data only, so the workload layer may import it without reaching the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    name: str
    args: tuple[tuple[str, type | tuple], ...] = ()  # (name, accepted type(s)), all required
    optional: tuple[tuple[str, type | tuple], ...] = ()
    kind: str = "kernel"  # kernel | fill | device
    help: str = ""


_NUM = (int, float)
PAGE_FAULT_KINDS = ("anon", "file", "cow", "nano")

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("user", (("cycles", _NUM),), help="cycles of user-mode work"),
        Action("kernel", (("cycles", _NUM),), help="cycles of guest-kernel work touching nothing sensitive"),
        Action("syscall", help="one system call round trip"),
        Action("exception", help="one non-MMU fault delivered to the kernel (divzero)"),
        Action("page_fault", optional=(("kind", str),), help="one demand fault (anon, file, cow, nano)"),
        Action("prot_fault", help="one protection fault (signal, no PTE change)"),
        Action("ptemod", help="one PTE write in the current address space"),
        Action("fork", (("pages", int),), optional=(("anon", int),),
               help="fork a process of that many present pages; anon: only that many are private "
                    "writable pages whose PTEs are copied (Linux 2.6), default all (Linux 2.4)"),
        Action("exec", (("pages", int),), help="replace the address space by one of that many pages"),
        Action("exit", (("pages", int),), help="tear down an address space"),
        Action("mmap", (("pages", int),), help="map pages (touching them is page_fault)"),
        Action("munmap", (("pages", int),), help="unmap pages with the TLB flush"),
        Action("context_switch", optional=(("ws_pages", int), ("to", int)),
               help="process switch; the next process touches ws_pages pages"),
        Action("llc_wakeup", optional=(("lines", _NUM), ("ws_lines", _NUM)),
               help="wake a task on another vCPU: cross-LLC IPI and line transfers, migration refill"),
        Action("tlb_refill", (("pages", int),), help="first touch of pages after a switch or flush"),
        Action("tlb_walks", (("n", _NUM),), help="TLB misses that need a page walk"),
        Action("io_port", help="one in/out to a device register"),
        Action("cr8_write", help="one write of the task-priority register"),
        Action("call_ret", optional=(("n", int),), help="call/return pairs in kernel mode"),
        Action("timer_tick", help="one timer interrupt and tick handler"),
        Action("fill", optional=(("op", str),), kind="fill",
               help="kernel path length not otherwise described (from the op's native reference)"),
        Action("disk_io", (("nbytes", int), ("write", bool)), kind="device",
               help="one synchronous block request on the domain's disk"),
        Action("net_io", (("packets", _NUM), ("tx", bool)), kind="device",
               help="a burst of packets sent to (tx) or received from the outside peer"),
    )
}

KERNEL_ACTIONS = frozenset(n for n, a in ACTIONS.items() if a.kind == "kernel")
DEVICE_ACTIONS = frozenset(n for n, a in ACTIONS.items() if a.kind == "device")


def check_args(name: str, args: tuple) -> str | None:
    """Why ``args`` do not fit action ``name`` (``None`` if they do)."""
    a = ACTIONS.get(name)
    if a is None:
        return f"unknown action {name!r}"
    spec = a.args + a.optional
    if not len(a.args) <= len(args) <= len(spec):
        want = ", ".join(n for n, _ in a.args) + (" [, " + ", ".join(n for n, _ in a.optional) + "]"
                                                   if a.optional else "")
        return f"{name} takes ({want}), got {len(args)} argument(s)"
    for v, (argname, types) in zip(args, spec):
        if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            return f"{name}.{argname} must be {getattr(types, '__name__', 'a number')}, got {v!r}"
        if not isinstance(v, types):
            return f"{name}.{argname} must be {getattr(types, '__name__', 'a number')}, got {v!r}"
    if name == "page_fault" and args and args[0] not in PAGE_FAULT_KINDS:
        return f"page_fault.kind must be one of {', '.join(PAGE_FAULT_KINDS)}, got {args[0]!r}"
    return None
