"""Core hypercall handlers: traps, stacks, FPU, timers, scheduling, vCPUs, console, version, iret,
multicall, callbacks, vm_assist, segment bases.

Design note
-----------
Each ``do_<name>`` follows the Xen function of the same name, with its argument checks and errno
values, read from ``xen-project/xen`` at ``c447b7308b`` (4.23-unstable):

* ``set_trap_table``, ``callback_op``, ``set_callbacks``: ``xen/arch/x86/pv/callback.c``;
* ``stack_switch``, ``fpu_taskswitch``, ``set_segment_base``: ``xen/arch/x86/pv/misc-hypercalls.c``
  (selector RPL fix-up: ``__fixup_guest_selector`` in ``xen/arch/x86/include/asm/desc.h``);
* ``iret``: ``xen/arch/x86/pv/iret.c``;
* ``sched_op``, ``set_timer_op``: ``xen/common/sched/core.c`` (``do_poll``,
  ``domain_watchdog``); ``sched_op_compat``: ``xen/arch/x86/compat.c``; ``domain_shutdown``:
  ``xen/common/domain.c``;
* ``vcpu_op``: ``xen/arch/x86/domain.c`` (``do_vcpu_op``) and ``xen/common/domain.c``
  (``common_vcpu_op``, ``map_guest_area``); ``vm_assist``: ``xen/common/domain.c`` with the
  masks of ``xen/arch/x86/include/asm/domain.h``;
* ``xen_version``: ``xen/common/kernel.c``; ``console_io``: ``xen/drivers/char/console.c``;
* ``multicall``: ``xen/common/multicall.c`` with ``pv_do_multicall_call``
  (``xen/arch/x86/pv/hypercall.c``);
* permission checks: the default XSM policy, ``xen/include/xsm/dummy.h``.

How Python arguments stand for registers and guest memory (the rule every handler applies, so
that a bad call returns an errno and never raises):

* a *register* argument (a number) is an ``int``, truncated to the register/parameter width as C
  does (``-1`` passed as an ``unsigned long`` is ``2**64 - 1``). A value that is not an ``int``
  at all (``None``, a string, a record where a number belongs) is something no register can
  hold: the handler returns ``-EINVAL`` (``-ENOSYS`` for a command selector, as Xen's
  ``default:`` case does; ``-ENOENT`` for a vCPU id);
* a *pointer* argument is a record of :mod:`hypercalls.args` (or a ``list`` for a guest array,
  ``bytes``/``bytearray`` for a buffer). Anything else, or a record whose IN fields do not hold
  values of their C types, fails Xen's ``copy_from_guest``: ``-EFAULT``. ``None`` is the NULL
  handle where Xen gives NULL a meaning.

Work reported to ``hv.meter`` (cause ``hypercall.<name>``): the entry/exit path is charged by
the dispatcher; handlers add the body: ``xen.stack_switch_cycles``, ``xen.fpu_taskswitch_cycles``,
``xen.multicall_entry_cycles`` per multicall entry, ``xen.guest_cr3_switch_pv64_cycles`` when a
64-bit PV ``iret`` returns to user mode (``toggle_guest_mode``), and ``native.mem_ref_cycles`` per
guest-memory record copied in bulk (one per ``trap_info`` entry). Everything else is counted.

Simplifications: no preemption/continuations (every batch completes in one call); scheduling
effects are state changes on the :class:`~pvsim.hypervisor.domain.VCPU` (``blocked``,
``online``, timers, ``polling``) that the scheduler layer acts on; the trap table and callbacks
are per domain (Xen keeps them per vCPU; PV Linux installs the same on every vCPU); a shut-down
hardware domain does not power the host off; ``VCPUOP_register_vcpu_time_memory_area``,
``VCPUOP_register_runstate_phys_area`` and ``VCPUOP_register_vcpu_time_phys_area`` are not
modelled (``-ENOSYS``, the answer of a Xen that predates them); ``update_descriptor``,
``set_gdt`` and the debug-register calls have no handler here (the dispatcher answers
``-ENOSYS``). ``VCPU_SSHOTTMR_future`` is ignored as in Xen >= 4.18 (commit 19c6cbd909) unless
``hv.honour_sshottmr_future`` is true, which restores the older ``-ETIME`` answer.

Hypervisor settings the handlers read (:class:`~pvsim.hypervisor.hypervisor.Hypervisor`):
``hv.honour_sshottmr_future``, ``hv.serial_rx`` (console input), ``hv.nr_pcpus`` (the host's).
"""

from __future__ import annotations

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls import table as T
from hypercalls.ops import DOMID_SELF
from pvsim.hypervisor.dispatch import ENTRY_PRICE, handler
from pvsim.hypervisor.domain import VCPU, Domain
from pvsim.io import evtchn as io_evtchn

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
MILLISECS = 1_000_000
STIME_DELTA_MAX = U64 >> 2  # xen/include/xen/time.h
INT_MAX = (1 << 31) - 1
NR_CPUS = 256  # default CONFIG_NR_CPUS on x86 (xen/arch/Kconfig)
VCPU_INFO_SIZE = 64  # sizeof(struct vcpu_info) on x86 (xen.h)
XEN_LEGACY_MAX_VCPUS = 32  # vcpu_info slots embedded in shared_info (arch-x86/xen.h)
X86_EXC_NMI = 2
X86_EFLAGS_IF = 1 << 9
SHUTDOWN_CODE_INVALID = None  # d->shutdown_code before any code is latched

# What this simulated Xen reports about itself (xen/Makefile: XEN_VERSION 4, XEN_SUBVERSION 23)
XEN_MAJOR, XEN_MINOR = 4, 23
XEN_EXTRAVERSION = b"-unstable"
XEN_CHANGESET = b"Thu Aug 20 09:15:07 2026 +0200 git:c447b7308b"
XEN_COMPILER = b"gcc (pvsim model)"
XEN_COMPILE_BY = b"pvsim"
XEN_COMPILE_DOMAIN = b"pvsim"
XEN_COMPILE_DATE = b"Thu Aug 20 09:15:07 UTC 2026"
# init_xen_cap_info (xen/arch/x86/setup.c) with PV, PV32 and HVM enabled
XEN_CAPABILITIES = b"xen-3.0-x86_64 xen-3.0-x86_32p hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 "
XEN_COMMANDLINE = b""
XEN_DENY = b"<denied>"  # xen_deny() (xen/common/version.c)


# ============================================================================================
# helpers shared by the handler modules
# ============================================================================================
def reg(value, bits: int = 64) -> int | None:
    """A register/parameter value truncated to ``bits`` (unsigned), or None if not a number."""
    if isinstance(value, int):
        return value & ((1 << bits) - 1)
    return None


def sreg(value, bits: int = 64) -> int | None:
    """As :func:`reg`, read as a signed ``bits``-wide integer."""
    v = reg(value, bits)
    if v is None:
        return None
    return v - (1 << bits) if v >> (bits - 1) else v


def now_ns(hv) -> int:
    eng = hv.engine
    return int(eng.now_ns) if eng is not None else 0


def is_canonical_address(addr: int) -> bool:
    """48-bit canonical form: bits 63..47 all equal (``is_canonical_address``, asm/x86_64/page.h)."""
    top = (addr & U64) >> 47
    return top == 0 or top == (1 << 17) - 1


def is_pv32(dom: Domain) -> bool:
    return dom.guest_type == "pv32"


def guest_kernel_rpl(dom: Domain) -> int:
    """``GUEST_KERNEL_RPL(d)``: ring 1 for 32-bit PV, ring 3 for 64-bit PV (asm/desc.h)."""
    return 1 if is_pv32(dom) else 3


def fixup_guest_selector(dom: Domain, sel: int) -> int:
    """``__fixup_guest_selector``: raise the selector's RPL to the guest kernel's ring."""
    rpl = guest_kernel_rpl(dom)
    return sel if (sel & 3) >= rpl else ((sel & ~3) | rpl)


def xsm_default_action(action: str, src: Domain, target: Domain | None) -> int:
    """``xsm_default_action`` of the dummy XSM policy (``xen/include/xsm/dummy.h``).

    ``HOOK``: allowed; ``TARGET``: the domain itself, its device model, or a control domain;
    ``DM_PRIV``: its device model or a control domain; ``PRIV``: a control domain only."""
    if action == "HOOK":
        return 0
    if action == "TARGET" and src is target:
        return 0
    if action in ("TARGET", "DM_PRIV") and target is not None and getattr(src, "target", None) is target:
        return 0
    if src.privileged:
        return 0
    return -E.EPERM


def lookup_domain_by_any_id(hv, caller: Domain, domid) -> Domain | None:
    """``rcu_lock_domain_by_any_id``: DOMID_SELF means the caller."""
    d = reg(domid, 16)
    if d is None:
        return None
    if d == DOMID_SELF:
        return caller
    return hv.domains.get(d)


def domain_shutdown(hv, d: Domain, reason: int) -> int:
    """``domain_shutdown`` (xen/common/domain.c): the first latched code wins; shutting down an
    already shutting-down domain changes nothing."""
    code = d.shutdown_code
    if code is SHUTDOWN_CODE_INVALID:
        code = reason & 0xFF
        d.shutdown_code = code
    if d.is_shutdown:
        return 0
    d.is_shutdown = True
    d.shutdown_reason = code
    hv.meter.count("domain.shutdown")
    hv.meter.count("virq.dom_exc")  # __domain_finalise_shutdown -> send_global_virq(VIRQ_DOM_EXC)
    return 0


def domain_crash(hv, d: Domain) -> None:
    """``domain_crash``: shut the domain down with ``SHUTDOWN_crash``."""
    hv.meter.count("domain.crash")
    domain_shutdown(hv, d, O.SHUTDOWN_crash)


def send_timer_event(hv, v: VCPU) -> None:
    """``send_timer_event``: raise ``VIRQ_TIMER`` on ``v`` through the domain's event channels
    (a no-op when the guest has not bound it, as in Xen)."""
    hv.meter.count("virq.timer")
    ev = v.domain.evtchn
    if ev is None:
        return
    send = getattr(ev, "send_guest_vcpu_virq", None)
    if send is not None:
        send(v, O.VIRQ_TIMER)
        return
    io_evtchn.send_virq(v.domain, O.VIRQ_TIMER, v.vcpu_id)


def events_need_delivery(v: VCPU) -> bool:
    """``local_events_need_delivery``: an upcall is pending and not masked."""
    return bool(v.evtchn_upcall_pending) and not v.evtchn_upcall_mask


def _work(hv, name: str, price: str, n: float = 1) -> None:
    hv.meter.add(f"hypercall.{name}", price, n)


# ============================================================================================
# set_trap_table (xen/arch/x86/pv/callback.c)
# ============================================================================================
@handler("set_trap_table")
def do_set_trap_table(hv, vcpu: VCPU, traps=None, *_ignored) -> int:
    """Install virtual-IDT entries from a list of :class:`~hypercalls.args.TrapInfo` ended by
    an entry with ``address == 0``; ``None`` (NULL) clears the whole table."""
    dom = vcpu.domain
    if traps is None:
        dom.trap_table.clear()
        return 0
    if not isinstance(traps, (list, tuple)):
        return -E.EFAULT
    rc = 0
    copied = 0
    for i in range(len(traps) + 1):
        if i == len(traps):  # the guest's array has no sentinel: the next read faults
            rc = -E.EFAULT
            break
        cur = traps[i]
        if A.check_in(cur, A.TrapInfo) or (is_pv32(dom) and cur.address > U32):
            rc = -E.EFAULT
            break
        copied += 1
        if cur.address == 0:
            break
        if not is_pv32(dom) and not is_canonical_address(cur.address):
            rc = -E.EINVAL
            break
        dom.trap_table[cur.vector] = {
            "vector": cur.vector,
            "flags": cur.flags,
            "cs": fixup_guest_selector(dom, cur.cs),
            "address": cur.address,
        }
    _work(hv, "set_trap_table", "native.mem_ref_cycles", copied)  # one 16-byte guest read each
    return rc


# ============================================================================================
# stack_switch, fpu_taskswitch, set_segment_base (xen/arch/x86/pv/misc-hypercalls.c)
# ============================================================================================
@handler("stack_switch")
def do_stack_switch(hv, vcpu: VCPU, ss=None, esp=None, *_ignored) -> int:
    """Set the kernel stack Xen switches to on a guest user->kernel transition. The selector's
    RPL is raised to the guest kernel's ring (``fixup_guest_stack_selector``); never fails."""
    width = 32 if is_pv32(vcpu.domain) else 64
    ss_v, sp_v = reg(ss, width), reg(esp, width)
    if ss_v is None or sp_v is None:
        return -E.EINVAL
    vcpu.kernel_ss = fixup_guest_selector(vcpu.domain, ss_v)
    vcpu.kernel_sp = sp_v
    _work(hv, "stack_switch", "xen.stack_switch_cycles")
    return 0


@handler("fpu_taskswitch")
def do_fpu_taskswitch(hv, vcpu: VCPU, set_=None, *_ignored) -> int:
    """Set (``set != 0``) or clear the virtual CR0.TS; ``set`` is a C ``int``."""
    s = reg(set_, 32)
    if s is None:
        return -E.EINVAL
    vcpu.fpu_ts = s != 0
    _work(hv, "fpu_taskswitch", "xen.fpu_taskswitch_cycles")
    return 0


@handler("set_segment_base")
def do_set_segment_base(hv, vcpu: VCPU, which=None, base=None, *_ignored) -> int:
    """Set FS / user GS / kernel GS base (x86-64 PV only)."""
    if is_pv32(vcpu.domain):
        return -E.ENOSYS  # x86/64 only.
    w, b = reg(which, 32), reg(base, 64)
    if w is None or b is None:
        return -E.EINVAL
    if w in (O.SEGBASE_FS, O.SEGBASE_GS_USER, O.SEGBASE_GS_KERNEL):
        if not is_canonical_address(b):
            return -E.EINVAL
        if w == O.SEGBASE_FS:
            vcpu.fs_base = b
        elif w == O.SEGBASE_GS_USER:
            vcpu.gs_base_user = b
        else:
            vcpu.gs_base_kernel = b
        return 0
    if w == O.SEGBASE_GS_USER_SEL:
        # Load user %gs from the GDT/LDT selector in base[15:0]; flat guest segments have base 0.
        vcpu.gs_base_user = 0
        return 0
    return -E.EINVAL


# ============================================================================================
# iret (xen/arch/x86/pv/iret.c)
# ============================================================================================
@handler("iret")
def do_iret(hv, vcpu: VCPU, frame=None, *_ignored) -> int:
    """Return from an exception/event/syscall bounce using the frame on the guest stack.

    ``frame`` is the :class:`~hypercalls.args.IretContext` at the guest's stack pointer; ``None``
    stands for the frame a guest kernel's return-to-user path builds (user ``cs``, ``IF`` set).
    An unreadable frame crashes the domain, as in Xen. Returns the saved ``rax``."""
    dom = vcpu.domain
    if frame is None:
        frame = A.IretContext(cs=3, rflags=X86_EFLAGS_IF)
    elif A.check_in(frame, A.IretContext):
        domain_crash(hv, dom)  # "Fault while reading IRET context from guest stack"
        return 0
    if (frame.cs & 3) == 3:
        hv.meter.count("iret.to_user")
        if dom.guest_type == "pv64":  # toggle_guest_mode: switch to the user page table
            _work(hv, "iret", "xen.guest_cr3_switch_pv64_cycles")
    # Restore upcall mask from supplied EFLAGS.IF.
    vcpu.evtchn_upcall_mask = 0 if frame.rflags & X86_EFLAGS_IF else 1
    vcpu.in_event_callback = False
    return frame.rax


# ============================================================================================
# set_timer_op (xen/common/sched/core.c)
# ============================================================================================
@handler("set_timer_op")
def do_set_timer_op(hv, vcpu: VCPU, timeout=None, timeout_hi=None, *_ignored) -> int:
    """Arm (absolute system time, ns) or stop (0) the vCPU's one-shot timer. 32-bit guests pass
    the 64-bit timeout as two halves (``compat_set_timer_op(lo, hi)``). Never fails: a negative
    or > 2^50 ns-away timeout is replaced by one 100 ms from now."""
    dom = vcpu.domain
    if dom.guest_type in ("pv32", "hvm32") and timeout_hi is not None:
        lo, hi = reg(timeout, 32), reg(timeout_hi, 32)
        if lo is None or hi is None:
            return -E.EINVAL
        t = sreg(lo | (hi << 32), 64)
    else:
        t = sreg(timeout, 64)
    if t is None:
        return -E.EINVAL
    now = now_ns(hv)
    offset = t - now
    if t == 0:
        vcpu.timer_deadline_ns = None
    elif t < 0 or (offset > 0 and ((offset >> 50) & U32) != 0):
        hv.meter.count("timer.huge_timeout")
        vcpu.timer_deadline_ns = now + 100 * MILLISECS
    else:
        vcpu.timer_deadline_ns = t
    arm_singleshot(hv, vcpu)
    hv.meter.count("timer.set")
    return 0


def arm_singleshot(hv, v: VCPU) -> None:
    """(Re)arm or stop ``v``'s one-shot timer on the host's timer wheel: at the deadline it raises
    ``VIRQ_TIMER`` (``vcpu_singleshot_timer_fn``)."""
    hv.sched.set_timer(v, v.timer_deadline_ns, lambda v=v: _singleshot_fired(hv, v))


def _singleshot_fired(hv, v: VCPU) -> None:
    v.timer_deadline_ns = None
    send_timer_event(hv, v)


# ============================================================================================
# sched_op (xen/common/sched/core.c)
# ============================================================================================
def _port_poll(dom: Domain, port: int) -> int:
    """``evtchn_port_poll``: >0 pending, 0 not pending, -EINVAL invalid port. Asks the event
    channel subsystem (``port_poll``, or ``port_is_valid`` + the 2-level ``pending`` bitmap of
    :class:`pvsim.io.evtchn.EvtchnDomain`); with no event-channel state, no port is pending and
    the ports of the 2-level ABI are the valid ones."""
    ev = dom.evtchn
    if ev is not None:
        fn = getattr(ev, "port_poll", None)
        if fn is not None:
            return int(fn(port))
        if hasattr(ev, "port_is_valid") and hasattr(ev, "pending"):
            if not ev.port_is_valid(port):
                return -E.EINVAL
            return 1 if ev.pending[port] else 0
    limit = O.EVTCHN_2L_NR_CHANNELS_32 if is_pv32(dom) else O.EVTCHN_2L_NR_CHANNELS_64
    return 0 if port < limit else -E.EINVAL


def _domain_watchdog(hv, d: Domain, wid: int, timeout_s: int) -> int:
    """``domain_watchdog``: id 0 allocates one of ``NR_DOMAIN_WATCHDOG_TIMERS`` and returns id+1."""
    if wid > O.NR_DOMAIN_WATCHDOG_TIMERS:
        return -E.EINVAL
    timers = d.watchdog_deadline_ns
    if timers is None:
        timers = d.watchdog_deadline_ns = [None] * O.NR_DOMAIN_WATCHDOG_TIMERS
    now = now_ns(hv)
    if wid == 0:
        for i in range(O.NR_DOMAIN_WATCHDOG_TIMERS):
            if timers[i] is None:
                timers[i] = now + timeout_s * 1_000_000_000
                return i + 1
        return -E.ENOSPC
    i = wid - 1
    if timers[i] is None:
        return -E.EINVAL
    timers[i] = None if timeout_s == 0 else now + timeout_s * 1_000_000_000
    return 0


@handler("sched_op")
def do_sched_op(hv, vcpu: VCPU, cmd=None, arg=None, *_ignored) -> int:
    dom = vcpu.domain
    c = sreg(cmd, 32)

    if c == O.SCHEDOP_yield:
        hv.meter.count("sched.yield")
        hv.sched.yield_(vcpu)
        return 0

    if c == O.SCHEDOP_block:
        # vcpu_block_enable_events: unmask, then block unless an event is already pending
        vcpu.evtchn_upcall_mask = 0
        hv.meter.count("sched.block")
        if not events_need_delivery(vcpu):
            hv.sched.block(vcpu)  # vcpu_block: descheduled until an event is delivered to it
        return 0

    if c == O.SCHEDOP_shutdown:
        if A.check_in(arg, A.SchedShutdown):
            return -E.EFAULT
        return domain_shutdown(hv, dom, arg.reason & 0xFF)

    if c == O.SCHEDOP_shutdown_code:
        if A.check_in(arg, A.SchedShutdown):
            return -E.EFAULT
        if dom.shutdown_code is SHUTDOWN_CODE_INVALID:
            dom.shutdown_code = arg.reason & 0xFF
        return 0

    if c == O.SCHEDOP_poll:
        if A.check_in(arg, A.SchedPoll):
            return -E.EFAULT
        nr = arg.nr_ports
        if nr > O.SCHED_POLL_MAX_PORTS:  # "Fairly arbitrary limit."
            return -E.EINVAL
        if len(arg.ports) < nr:  # guest_handle_okay
            return -E.EFAULT
        if events_need_delivery(vcpu):
            return 0
        ports = arg.ports[:nr]
        for port in ports:
            rc = _port_poll(dom, port)
            if rc:
                return 0 if rc > 0 else rc
        vcpu.polling = frozenset(ports)
        vcpu.poll_deadline_ns = arg.timeout or None
        hv.sched.poll(vcpu, vcpu.polling, vcpu.poll_deadline_ns)  # do_poll: blocked until a port fires
        hv.meter.count("sched.poll")
        return 0

    if c == O.SCHEDOP_remote_shutdown:
        if A.check_in(arg, A.SchedRemoteShutdown):
            return -E.EFAULT
        target = hv.domains.get(arg.domain_id)  # rcu_lock_domain_by_id: no DOMID_SELF here
        if target is None:
            return -E.ESRCH
        rc = xsm_default_action("DM_PRIV", dom, target)
        if rc == 0:
            domain_shutdown(hv, target, arg.reason & 0xFF)
        return rc

    if c == O.SCHEDOP_watchdog:
        if A.check_in(arg, A.SchedWatchdog):
            return -E.EFAULT
        return _domain_watchdog(hv, dom, arg.id, arg.timeout)

    if c == O.SCHEDOP_pin_override:
        if not dom.privileged:  # is_hardware_domain
            return -E.EPERM
        if A.check_in(arg, A.SchedPinOverride):
            return -E.EFAULT
        nr_cpus = int(hv.nr_pcpus or NR_CPUS)
        if arg.pcpu >= nr_cpus:
            return -E.EINVAL
        vcpu.pin_override = None if arg.pcpu < 0 else arg.pcpu
        return 0

    return -E.ENOSYS


@handler("sched_op_compat")
def do_sched_op_compat(hv, vcpu: VCPU, cmd=None, arg=None, *_ignored) -> int:
    """The pre-3.0.2 form (``xen/arch/x86/compat.c``): yield and block as ``sched_op``;
    shutdown takes the reason itself as the argument."""
    c = sreg(cmd, 32)
    if c in (O.SCHEDOP_yield, O.SCHEDOP_block):
        return do_sched_op(hv, vcpu, c, None)
    if c == O.SCHEDOP_shutdown:
        reason = reg(arg, 64)
        if reason is None:
            return -E.EINVAL
        domain_shutdown(hv, vcpu.domain, reason & 0xFF)
        return 0
    return -E.ENOSYS


# ============================================================================================
# vcpu_op (xen/arch/x86/domain.c do_vcpu_op, xen/common/domain.c common_vcpu_op)
# ============================================================================================
def _runstate_snapshot(hv, v: VCPU, out: A.VcpuRunstateInfo) -> None:
    """``vcpu_runstate_get`` copied into a guest :class:`VcpuRunstateInfo`."""
    out.state = v.runstate
    out.state_entry_time = now_ns(hv)
    out.time = list(v.runstate_time_ns)


@handler("vcpu_op")
def do_vcpu_op(hv, vcpu: VCPU, cmd=None, vcpuid=None, arg=None, *_ignored) -> int:
    dom = vcpu.domain
    vid = reg(vcpuid, 32)
    if vid is None or vid >= len(dom.vcpus):
        return -E.ENOENT
    v = dom.vcpus[vid]
    c = sreg(cmd, 32)

    # --- x86 arch_do_vcpu_op part
    if c == O.VCPUOP_send_nmi:
        if arg is not None:
            return -E.EINVAL
        if not v.nmi_pending:
            v.nmi_pending = True
            hv.meter.count("vcpu.kick")
        return 0
    if c == O.VCPUOP_get_physid:
        return -E.EINVAL  # only for a hardware domain's pinned vCPUs (dom0_vcpus_pin)

    # --- common_vcpu_op
    if c == O.VCPUOP_initialise:
        if dom.is_pv and vid >= XEN_LEGACY_MAX_VCPUS and not v.vcpu_info_registered:
            return -E.EINVAL  # no vcpu_info for this vCPU yet
        if A.check_in(arg, A.VcpuGuestContext):
            return -E.EFAULT
        if v.initialised:
            return -E.EEXIST
        if dom.is_pv:
            v.kernel_ss = fixup_guest_selector(dom, arg.kernel_ss)
            v.kernel_sp = arg.kernel_sp
            for cbtype, addr in (
                (O.CALLBACKTYPE_event, arg.event_callback_eip),
                (O.CALLBACKTYPE_failsafe, arg.failsafe_callback_eip),
                (O.CALLBACKTYPE_syscall, arg.syscall_callback_eip),
            ):
                if addr:
                    dom.callbacks[cbtype] = addr
        v.initialised = True
        return 0

    if c == O.VCPUOP_up:
        if not v.initialised:
            return -E.EINVAL
        if not v.online:
            v.online = True
            hv.sched.vcpu_up(v)  # vcpu_wake: runnable again
            hv.meter.count("vcpu.wake")
        return 0

    if c == O.VCPUOP_down:
        if not any(u.online for u in dom.vcpus if u.vcpu_id != vid):
            return domain_shutdown(hv, dom, O.SHUTDOWN_poweroff)  # last vCPU going down
        if v.online:
            v.online = False
            hv.sched.vcpu_down(v)  # vcpu_sleep_nosync: taken off its pCPU, offline
            hv.meter.count("vcpu.sleep")
        return 0

    if c == O.VCPUOP_is_up:
        return 1 if v.online else 0

    if c == O.VCPUOP_get_runstate_info:
        if not isinstance(arg, A.VcpuRunstateInfo):
            return -E.EFAULT
        _runstate_snapshot(hv, v, arg)
        return 0

    if c == O.VCPUOP_register_runstate_memory_area:
        if A.check_in(arg, A.VcpuRegisterRunstateMemoryArea):
            return -E.EFAULT
        if not isinstance(arg.addr, A.VcpuRunstateInfo):  # guest_handle_okay
            return -E.EFAULT
        v.runstate_guest = arg.addr
        v.runstate_area_registered = True
        _runstate_snapshot(hv, v, arg.addr)
        return 0

    if c == O.VCPUOP_set_periodic_timer:
        if A.check_in(arg, A.VcpuSetPeriodicTimer):
            return -E.EFAULT
        if arg.period_ns < MILLISECS or arg.period_ns > STIME_DELTA_MAX:
            return -E.EINVAL
        v.periodic_period_ns = arg.period_ns
        hv.meter.count("timer.set")
        return 0

    if c == O.VCPUOP_stop_periodic_timer:
        v.periodic_period_ns = None
        return 0

    if c == O.VCPUOP_set_singleshot_timer:
        if v is not vcpu:
            return -E.EINVAL
        if A.check_in(arg, A.VcpuSetSingleshotTimer):
            return -E.EFAULT
        now = now_ns(hv)
        if arg.timeout_abs_ns < now:
            if hv.honour_sshottmr_future and arg.flags & O.VCPU_SSHOTTMR_future:
                return -E.ETIME  # Xen < 4.18
            # "the timeout has already expired and just inject the event"
            v.timer_deadline_ns = None
            send_timer_event(hv, v)
            return 0
        v.timer_deadline_ns = arg.timeout_abs_ns
        arm_singleshot(hv, v)
        hv.meter.count("timer.set")
        return 0

    if c == O.VCPUOP_stop_singleshot_timer:
        if v is not vcpu:
            return -E.EINVAL
        v.timer_deadline_ns = None
        arm_singleshot(hv, v)
        return 0

    if c == O.VCPUOP_register_vcpu_info:
        if A.check_in(arg, A.VcpuRegisterVcpuInfo):
            return -E.EFAULT
        gaddr = (arg.mfn << PAGE_SHIFT) + arg.offset
        if gaddr >= U64 or (gaddr >> PAGE_SHIFT) != arg.mfn:
            return -E.EINVAL
        if v.vcpu_info_registered:  # "Preliminary check only; see map_guest_area()."
            return -E.EBUSY
        # map_guest_area: must not cross a page, must be xen_ulong_t aligned
        if (gaddr >> PAGE_SHIFT) != ((gaddr + VCPU_INFO_SIZE - 1) >> PAGE_SHIFT):
            return -E.ENXIO
        if gaddr % (4 if is_pv32(dom) else 8):
            return -E.ENXIO
        v.vcpu_info_registered = True
        return 0

    return -E.ENOSYS


# ============================================================================================
# callback_op, set_callbacks (xen/arch/x86/pv/callback.c)
# ============================================================================================
def _register_nmi_callback(dom: Domain, address: int) -> None:
    dom.trap_table[X86_EXC_NMI] = {
        "vector": X86_EXC_NMI,
        "flags": O.TI_IF_FLAG,  # TI_SET_IF(t, 1)
        "cs": O.FLAT_RING1_CS if is_pv32(dom) else O.FLAT_KERNEL_CS,
        "address": address,
    }
    dom.callbacks[O.CALLBACKTYPE_nmi] = address


def _register_guest_callback(dom: Domain, cbtype: int, address: int) -> int:
    if is_pv32(dom):  # compat_register_guest_callback: no canonical check, no syscall type
        allowed = (O.CALLBACKTYPE_event, O.CALLBACKTYPE_failsafe, O.CALLBACKTYPE_syscall32,
                   O.CALLBACKTYPE_sysenter)
    else:
        if not is_canonical_address(address):
            return -E.EINVAL
        allowed = (O.CALLBACKTYPE_event, O.CALLBACKTYPE_failsafe, O.CALLBACKTYPE_syscall,
                   O.CALLBACKTYPE_syscall32, O.CALLBACKTYPE_sysenter)
    if cbtype in allowed:
        dom.callbacks[cbtype] = address
        return 0
    if cbtype == O.CALLBACKTYPE_nmi:
        _register_nmi_callback(dom, address)
        return 0
    return -E.ENOSYS


@handler("callback_op")
def do_callback_op(hv, vcpu: VCPU, cmd=None, arg=None, *_ignored) -> int:
    dom = vcpu.domain
    c = sreg(cmd, 32)
    if c == O.CALLBACKOP_register:
        if A.check_in(arg, A.CallbackRegister) or (is_pv32(dom) and arg.address > U32):
            return -E.EFAULT
        return _register_guest_callback(dom, arg.type, arg.address)
    if c == O.CALLBACKOP_unregister:
        if A.check_in(arg, A.CallbackUnregister):
            return -E.EFAULT
        if is_pv32(dom):
            not_removable = (O.CALLBACKTYPE_event, O.CALLBACKTYPE_failsafe,
                             O.CALLBACKTYPE_syscall32, O.CALLBACKTYPE_sysenter)
        else:
            not_removable = (O.CALLBACKTYPE_event, O.CALLBACKTYPE_failsafe,
                             O.CALLBACKTYPE_syscall, O.CALLBACKTYPE_syscall32,
                             O.CALLBACKTYPE_sysenter)
        if arg.type in not_removable:
            return -E.EINVAL
        if arg.type == O.CALLBACKTYPE_nmi:
            dom.trap_table.pop(X86_EXC_NMI, None)
            dom.callbacks.pop(O.CALLBACKTYPE_nmi, None)
            return 0
        return -E.ENOSYS
    # do_callback_op answers -ENOSYS, compat_callback_op -EINVAL
    return -E.EINVAL if is_pv32(dom) else -E.ENOSYS


@handler("set_callbacks")
def do_set_callbacks(hv, vcpu: VCPU, *args) -> int:
    """Legacy registration. x86-64: (event, failsafe, syscall); 32-bit: (event_selector,
    event_address, failsafe_selector, failsafe_address). Errors are ignored; returns 0."""
    dom = vcpu.domain
    vals = [reg(a, 32 if is_pv32(dom) else 64) for a in args]
    if is_pv32(dom):
        regs = [(O.CALLBACKTYPE_event, 1), (O.CALLBACKTYPE_failsafe, 3)]
    else:
        regs = [(O.CALLBACKTYPE_event, 0), (O.CALLBACKTYPE_failsafe, 1), (O.CALLBACKTYPE_syscall, 2)]
    for cbtype, idx in regs:
        addr = vals[idx] if idx < len(vals) else None
        if addr is not None:
            _register_guest_callback(dom, cbtype, addr)
    return 0


# ============================================================================================
# vm_assist (xen/common/domain.c, masks from xen/arch/x86/include/asm/domain.h)
# ============================================================================================
def vm_assist_valid_mask(dom: Domain) -> int:
    if not dom.is_pv:
        return O.VM_ASSIST_VALID_HVM
    return O.VM_ASSIST_VALID_PV32 if is_pv32(dom) else O.VM_ASSIST_VALID_PV64


@handler("vm_assist")
def do_vm_assist(hv, vcpu: VCPU, cmd=None, type_=None, *_ignored) -> int:
    dom = vcpu.domain
    t = reg(type_, 32)
    if t is None or t >= 64 or not (vm_assist_valid_mask(dom) >> t) & 1:
        return -E.EINVAL
    c = reg(cmd, 32)
    if c == O.VMASST_CMD_enable:
        dom.vm_assist |= 1 << t
        return 0
    if c == O.VMASST_CMD_disable:
        dom.vm_assist &= ~(1 << t)
        return 0
    return -E.ENOSYS


# ============================================================================================
# console_io (xen/drivers/char/console.c)
# ============================================================================================
def _is_console_printable(ch: int) -> bool:
    return 0x20 <= ch <= 0x7E or ch in (0x09, 0x0A, 0x0D)


@handler("console_io")
def do_console_io(hv, vcpu: VCPU, cmd=None, count=None, buffer=None, *_ignored) -> int:
    """``CONSOLEIO_write`` appends to ``Domain.console``; ``CONSOLEIO_read`` drains the host's
    serial input ``hv.serial_rx`` (a ``bytearray``; nothing to read when absent) into a
    ``bytearray`` buffer. Only the control domain (or a domain with ``is_console``) may use it."""
    dom = vcpu.domain
    c = sreg(cmd, 32)
    if not dom.is_console:
        rc = xsm_default_action("PRIV", dom, None)
        if rc:
            return rc
    n = reg(count, 32)
    if c == O.CONSOLEIO_write:
        if n is None:
            return -E.EINVAL
        if not isinstance(buffer, (bytes, bytearray, memoryview)):
            return -E.EFAULT if n else 0
        data = bytes(buffer)
        done = 0
        while done < n:  # copied in chunks of sizeof(kbuf) - 1 = 127 bytes
            k = min(n - done, 127)
            if done + k > len(data):
                return -E.EFAULT
            chunk = data[done:done + k]
            if not dom.privileged:
                chunk = bytes(ch for ch in chunk if _is_console_printable(ch))
            dom.console.append(chunk)
            done += k
        hv.meter.count("console.bytes", n)
        return 0
    if c == O.CONSOLEIO_read:
        if n is None:
            return -E.EINVAL
        if n > INT_MAX:
            return -E.E2BIG
        rx = hv.serial_rx
        if not rx or n == 0:
            return 0
        k = min(n, len(rx))
        if not isinstance(buffer, bytearray):
            return -E.EFAULT
        if len(buffer) < k:
            buffer.extend(b"\0" * (k - len(buffer)))
        buffer[:k] = rx[:k]
        del rx[:k]
        return k
    return -E.ENOSYS


# ============================================================================================
# xen_version (xen/common/kernel.c, XSM policy xen/include/xsm/dummy.h)
# ============================================================================================
_XENVER_PUBLIC = frozenset({O.XENVER_version, O.XENVER_platform_parameters, O.XENVER_get_features})
_XENVER_HOOK = frozenset({
    O.XENVER_extraversion, O.XENVER_extraversion2, O.XENVER_compile_info, O.XENVER_capabilities,
    O.XENVER_capabilities2, O.XENVER_changeset, O.XENVER_changeset2, O.XENVER_pagesize,
    O.XENVER_guest_handle,
})


def _xenver_denied(dom: Domain, cmd: int) -> bool:
    if cmd in _XENVER_PUBLIC or cmd in _XENVER_HOOK:
        return False
    return xsm_default_action("PRIV", dom, None) != 0


def xen_features(dom: Domain) -> int:
    """Submap 0 of ``XENVER_get_features`` for ``dom`` (x86, as kernel.c computes it)."""
    translate = not dom.is_pv  # paging_mode_translate: HVM/PVH guests
    fs = (1 << O.XENFEAT_memory_op_vnode_supported) | (1 << O.XENFEAT_vcpu_time_phys_area)
    fs |= 1 << O.XENFEAT_runstate_phys_area
    if dom.vm_assist & (1 << O.VMASST_TYPE_pae_extended_cr3):
        fs |= 1 << O.XENFEAT_pae_pgdir_above_4gb
    if translate:
        fs |= (1 << O.XENFEAT_writable_page_tables) | (1 << O.XENFEAT_auto_translated_physmap)
    if dom.privileged:
        fs |= 1 << O.XENFEAT_dom0
    if dom.is_pv:
        fs |= ((1 << O.XENFEAT_mmu_pt_update_preserve_ad) | (1 << O.XENFEAT_highmem_assist)
               | (1 << O.XENFEAT_gnttab_map_avail_bits))
    else:
        fs |= (1 << O.XENFEAT_hvm_safe_pvclock) | (1 << O.XENFEAT_hvm_callback_vector)
    fs |= 1 << O.XENFEAT_dm_msix_all_writes
    fs |= (1 << O.XENFEAT_not_direct_mapped) if translate else (1 << O.XENFEAT_direct_mapped)
    return fs


def _varbuf(cmd: int, arg) -> int:
    if cmd == O.XENVER_build_id:
        return -E.ENODATA  # the model has no build id
    s = {
        O.XENVER_extraversion2: XEN_EXTRAVERSION,
        O.XENVER_changeset2: XEN_CHANGESET,
        O.XENVER_commandline2: XEN_COMMANDLINE,
        O.XENVER_capabilities2: XEN_CAPABILITIES,
    }[cmd]
    if arg is None:  # length request
        return len(s)
    if A.check_in(arg, A.XenVarbuf):
        return -E.EFAULT
    if len(s) > arg.len:
        return -E.ENOBUFS
    arg.buf = s
    return len(s)


@handler("xen_version")
def do_xen_version(hv, vcpu: VCPU, cmd=None, arg=None, *_ignored) -> int:
    dom = vcpu.domain
    c = sreg(cmd, 32)
    if c is None:
        return -E.ENOSYS
    deny = _xenver_denied(dom, c)

    if c == O.XENVER_version:
        return (XEN_MAJOR << 16) | XEN_MINOR
    if c == O.XENVER_extraversion:
        if not isinstance(arg, A.XenExtraversion):
            return -E.EFAULT
        arg.extraversion = (XEN_DENY if deny else XEN_EXTRAVERSION)[: O.XEN_EXTRAVERSION_LEN - 1]
        return 0
    if c == O.XENVER_compile_info:
        if not isinstance(arg, A.XenCompileInfo):
            return -E.EFAULT
        arg.compiler = XEN_DENY if deny else XEN_COMPILER
        arg.compile_by = XEN_DENY if deny else XEN_COMPILE_BY
        arg.compile_domain = XEN_DENY if deny else XEN_COMPILE_DOMAIN
        arg.compile_date = XEN_DENY if deny else XEN_COMPILE_DATE
        return 0
    if c == O.XENVER_capabilities:
        if not isinstance(arg, A.XenCapabilitiesInfo):
            return -E.EFAULT
        arg.info = b"" if deny else XEN_CAPABILITIES
        return 0
    if c == O.XENVER_platform_parameters:
        if not isinstance(arg, A.XenPlatformParameters):
            return -E.EFAULT
        if is_pv32(dom):
            arg.virt_start = O.HYPERVISOR_COMPAT_VIRT_START
        else:
            arg.virt_start = O.HYPERVISOR_VIRT_START if dom.is_pv else 0
        return 0
    if c == O.XENVER_changeset:
        if not isinstance(arg, A.XenChangesetInfo):
            return -E.EFAULT
        arg.info = XEN_DENY if deny else XEN_CHANGESET
        return 0
    if c == O.XENVER_get_features:
        if A.check_in(arg, A.XenFeatureInfo):
            return -E.EFAULT
        if arg.submap_idx != 0:
            return -E.EINVAL
        arg.submap = xen_features(dom)
        return 0
    if c == O.XENVER_pagesize:
        if deny:
            return 0
        return -E.EINVAL if arg is not None else PAGE_SIZE
    if c == O.XENVER_guest_handle:
        if not isinstance(arg, A.XenDomainHandle):
            return -E.EFAULT
        arg.handle = bytes(16) if deny else (dom.domid & 0xFFFF).to_bytes(16, "big")
        return 0
    if c == O.XENVER_commandline:
        if not isinstance(arg, A.XenCommandline):
            return -E.EFAULT
        arg.cmdline = XEN_DENY if deny else XEN_COMMANDLINE
        return 0
    if c in (O.XENVER_build_id, O.XENVER_extraversion2, O.XENVER_capabilities2,
             O.XENVER_changeset2, O.XENVER_commandline2):
        if deny:
            return -E.EPERM
        return _varbuf(c, arg)
    return -E.ENOSYS


# ============================================================================================
# multicall (xen/common/multicall.c)
# ============================================================================================
_IN_MULTICALL: set[int] = set()  # id() of vCPUs inside a multicall (_MCSF_in_multicall)
_NR_IRET = T.number("iret")


def _run_subcall(hv, vcpu: VCPU, op: int, call_args: list) -> int:
    """Run one entry through the dispatcher (counted per domain and number, refused with
    -ENOSYS when the guest type may not make it) without a second guest->Xen transition: the
    entry/exit path the dispatcher charges for it is taken back (the caller charges one
    ``xen.multicall_entry_cycles`` instead)."""
    meter = hv.meter
    rc = hv.hypercall(vcpu, op, *call_args)
    name = T.name(op)
    cause = f"hypercall.{name or op}"
    work = meter.work
    for price in ENTRY_PRICE.get(vcpu.domain.guest_type, ()):
        key = (cause, price)
        left = work.get(key, 0) - 1
        if left > 0:
            work[key] = left
        elif left == 0:
            del work[key]
    return rc


@handler("multicall")
def do_multicall(hv, vcpu: VCPU, call_list=None, nr_calls=None, *_ignored) -> int:
    """Run ``nr_calls`` :class:`~hypercalls.args.MulticallEntry` in order, writing each
    ``result``. Re-entry (a multicall inside a multicall) is refused with ``-EINVAL`` (that
    entry's result); an unreadable list or entry stops the batch with ``-EFAULT``; a PV
    ``iret`` entry ends the batch and its result becomes the return value (``mc_exit``).
    Each entry gets as many of its first five ``args`` as the hypercall's Xen prototype takes
    (:data:`hypercalls.table.HYPERCALL_NARGS`)."""
    key = id(vcpu)
    if key in _IN_MULTICALL:
        return -E.EINVAL  # "Multicall reentry is disallowed."
    n = reg(nr_calls, 64)
    if n is None or not isinstance(call_list, (list, tuple)) or n > len(call_list):
        return -E.EFAULT  # guest_handle_okay
    rc = 0
    done = 0
    _IN_MULTICALL.add(key)
    try:
        for i in range(n):
            entry = call_list[i]
            if (not isinstance(entry, A.MulticallEntry) or not A.fits(entry.op, "xen_ulong_t")
                    or not isinstance(entry.args, (list, tuple))):
                rc = -E.EFAULT
                break
            hv.meter.add("hypercall.multicall", "xen.multicall_entry_cycles")
            # call_handlers_*(): only as many of args[0..4] as the handler's prototype takes
            # (HYPERVISOR_iret's "argument" is the model's stand-in for its stack frame).
            name = T.name(entry.op)
            nargs = max(1, T.hypercall_nargs(name, vcpu.domain.guest_type)) if name else 0
            result = _run_subcall(hv, vcpu, entry.op, list(entry.args[: min(nargs, O.HYPERCALL_MAX_ARGS)]))
            entry.result = result
            done += 1
            if entry.op == _NR_IRET and vcpu.domain.is_pv:
                rc = result  # mc_exit
                break
        hv.meter.count("multicall.entries", done)
    finally:
        _IN_MULTICALL.discard(key)
    return rc
