"""The hypercall table: one entry per hypercall, in the spirit of ``xen/include/hypercall-defs.c``.

Design note
-----------
This module is the one place that says, for every hypercall, what the guest-visible ABI and the
simulated dispatcher need to know:

* its number and name: ``__HYPERVISOR_*`` in ``xen/include/public/xen.h``, also exported below
  as module constants named as Xen does minus the leading underscores
  (``HYPERVISOR_event_channel_op = 32``);
* its parameters: the 64-bit prototype of ``hypercall-defs.c`` (``prefix: do``), and the
  32-bit one (``prefix: compat``) where that differs, e.g. ``set_timer_op(lo, hi)`` for
  ``set_timer_op(timeout)``: a 32-bit guest passes a 64-bit value in two registers. ``None``
  when Xen has no prototype (``xenoprof_op``, dropped in Xen 4.22; ``tmem_op``, removed);
* which guest types may make it: the pv32/pv64/hvm32/hvm64 columns of the ``table:`` at the
  end of ``hypercall-defs.c`` (x86). A call a guest type may not make has no entry in its
  dispatch table, so Xen returns ``-ENOSYS``;
* the name of pvsim's handler, ``do_<name>`` (registered with
  :func:`pvsim.hypervisor.hypervisor.handler`), or ``None`` where pvsim has none, which the
  dispatcher answers with ``-ENOSYS`` too.

Derived here and nowhere else: :data:`HYPERCALL_NARGS` / :data:`HYPERCALL_NARGS_COMPAT` (how
many of the five argument registers Xen's ``call_handlers_*()`` pass to each handler) and
:func:`hypercall_nargs`.

Simplifications: the 32-bit column is used for both ``pv32`` and ``hvm32`` callers (Xen's
``hvm32`` column uses ``compat``/``hvm`` handlers with the same parameter counts); the priority
annotations of the ``table:`` (``do:1``) and the Arm column are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypercalls.ops import HYPERCALL_MAX_ARGS

# --------------------------------------------------------------------------------------------
# __HYPERVISOR_* (xen.h)
# --------------------------------------------------------------------------------------------
HYPERVISOR_set_trap_table = 0
HYPERVISOR_mmu_update = 1
HYPERVISOR_set_gdt = 2
HYPERVISOR_stack_switch = 3
HYPERVISOR_set_callbacks = 4
HYPERVISOR_fpu_taskswitch = 5
HYPERVISOR_sched_op_compat = 6
HYPERVISOR_platform_op = 7
HYPERVISOR_set_debugreg = 8
HYPERVISOR_get_debugreg = 9
HYPERVISOR_update_descriptor = 10
HYPERVISOR_memory_op = 12
HYPERVISOR_multicall = 13
HYPERVISOR_update_va_mapping = 14
HYPERVISOR_set_timer_op = 15
HYPERVISOR_event_channel_op_compat = 16
HYPERVISOR_xen_version = 17
HYPERVISOR_console_io = 18
HYPERVISOR_physdev_op_compat = 19
HYPERVISOR_grant_table_op = 20
HYPERVISOR_vm_assist = 21
HYPERVISOR_update_va_mapping_otherdomain = 22
HYPERVISOR_iret = 23
HYPERVISOR_vcpu_op = 24
HYPERVISOR_set_segment_base = 25
HYPERVISOR_mmuext_op = 26
HYPERVISOR_xsm_op = 27
HYPERVISOR_nmi_op = 28
HYPERVISOR_sched_op = 29
HYPERVISOR_callback_op = 30
HYPERVISOR_xenoprof_op = 31
HYPERVISOR_event_channel_op = 32
HYPERVISOR_physdev_op = 33
HYPERVISOR_hvm_op = 34
HYPERVISOR_sysctl = 35
HYPERVISOR_domctl = 36
HYPERVISOR_kexec_op = 37
HYPERVISOR_tmem_op = 38
HYPERVISOR_argo_op = 39
HYPERVISOR_xenpmu_op = 40
HYPERVISOR_dm_op = 41
HYPERVISOR_hypfs_op = 42
# Architecture-specific hypercall definitions.
HYPERVISOR_arch_0 = 48
HYPERVISOR_arch_1 = 49
HYPERVISOR_arch_2 = 50
HYPERVISOR_arch_3 = 51
HYPERVISOR_arch_4 = 52
HYPERVISOR_arch_5 = 53
HYPERVISOR_arch_6 = 54
HYPERVISOR_arch_7 = 55
# x86 names of the arch slots (arch-x86/xen.h)
HYPERVISOR_mca = HYPERVISOR_arch_0
HYPERVISOR_paging_domctl_cont = HYPERVISOR_arch_1

NR_hypercalls = 64  # hypercall page: 128 stubs, numbers below 64 used on x86

# --------------------------------------------------------------------------------------------
# Guest types (the caller columns of hypercall-defs.c)
# --------------------------------------------------------------------------------------------
PV = frozenset({"pv32", "pv64"})
HVM = frozenset({"hvm32", "hvm64"})
ALL = PV | HVM
NONE: frozenset[str] = frozenset()
COMPAT_GUEST_TYPES = frozenset({"pv32", "hvm32"})  # callers that use the compat prototypes


@dataclass(frozen=True)
class Hypercall:
    """One row of the table."""

    nr: int
    name: str
    args: tuple[str, ...] | None  # 64-bit prototype (``prefix: do``); None: no prototype
    compat_args: tuple[str, ...] | None  # 32-bit prototype where it differs, else None
    guests: frozenset  # guest types that may make the call
    handler: str | None  # pvsim's ``do_<name>``, or None (-ENOSYS)

    @property
    def args32(self) -> tuple[str, ...] | None:
        """The parameters a 32-bit (compat) caller passes."""
        return self.compat_args if self.compat_args is not None else self.args

    def nargs(self, guest_type: str) -> int:
        """Argument registers Xen hands the handler for ``guest_type`` (5 without a prototype)."""
        params = self.args32 if guest_type in COMPAT_GUEST_TYPES else self.args
        return HYPERCALL_MAX_ARGS if params is None else len(params)


def _hc(nr: int, name: str, args: str | None, guests: frozenset, handled: bool,
        compat: str | None = None) -> Hypercall:
    return Hypercall(nr, name, None if args is None else tuple(args.split()),
                     None if compat is None else tuple(compat.split()), guests,
                     f"do_{name}" if handled else None)


# Columns: number, name, 64-bit parameters (hypercall-defs.c names, space separated), guest
# types, whether pvsim has a handler do_<name>, and the compat parameters where they differ.
_ENTRIES = (
    _hc(HYPERVISOR_set_trap_table, "set_trap_table", "traps", PV, True),
    _hc(HYPERVISOR_mmu_update, "mmu_update", "ureqs count pdone foreigndom", PV, True),
    _hc(HYPERVISOR_set_gdt, "set_gdt", "frame_list entries", PV, False),
    _hc(HYPERVISOR_stack_switch, "stack_switch", "ss esp", PV, True),
    _hc(HYPERVISOR_set_callbacks, "set_callbacks", "event_address failsafe_address syscall_address",
        PV, True, compat="event_selector event_address failsafe_selector failsafe_address"),
    _hc(HYPERVISOR_fpu_taskswitch, "fpu_taskswitch", "set", PV, True),
    _hc(HYPERVISOR_sched_op_compat, "sched_op_compat", "cmd arg", PV, True),
    _hc(HYPERVISOR_platform_op, "platform_op", "u_xenpf_op", ALL, False),
    _hc(HYPERVISOR_set_debugreg, "set_debugreg", "reg value", PV, False),
    _hc(HYPERVISOR_get_debugreg, "get_debugreg", "reg", PV, False),
    _hc(HYPERVISOR_update_descriptor, "update_descriptor", "gaddr desc", PV, False,
        compat="pa_lo pa_hi desc_lo desc_hi"),
    _hc(HYPERVISOR_memory_op, "memory_op", "cmd arg", ALL, True),
    _hc(HYPERVISOR_multicall, "multicall", "call_list nr_calls", ALL, True),
    _hc(HYPERVISOR_update_va_mapping, "update_va_mapping", "va val64 flags", PV, True,
        compat="va lo hi flags"),
    _hc(HYPERVISOR_set_timer_op, "set_timer_op", "timeout", ALL, True, compat="lo hi"),
    _hc(HYPERVISOR_event_channel_op_compat, "event_channel_op_compat", "uop", PV, False),
    _hc(HYPERVISOR_xen_version, "xen_version", "cmd arg", ALL, True),
    _hc(HYPERVISOR_console_io, "console_io", "cmd count buffer", ALL, True),
    _hc(HYPERVISOR_physdev_op_compat, "physdev_op_compat", "uop", PV, False),
    _hc(HYPERVISOR_grant_table_op, "grant_table_op", "cmd uop count", ALL, True),
    _hc(HYPERVISOR_vm_assist, "vm_assist", "cmd type", ALL, True),
    _hc(HYPERVISOR_update_va_mapping_otherdomain, "update_va_mapping_otherdomain",
        "va val64 flags domid", PV, False, compat="va lo hi flags domid"),
    _hc(HYPERVISOR_iret, "iret", "", PV, True),
    _hc(HYPERVISOR_vcpu_op, "vcpu_op", "cmd vcpuid arg", ALL, True),
    _hc(HYPERVISOR_set_segment_base, "set_segment_base", "which base", PV, True),  # pv32: -ENOSYS from the handler
    _hc(HYPERVISOR_mmuext_op, "mmuext_op", "uops count pdone foreigndom", ALL, True,
        compat="arg count pdone foreigndom"),
    _hc(HYPERVISOR_xsm_op, "xsm_op", "op", ALL, False),
    _hc(HYPERVISOR_nmi_op, "nmi_op", "cmd arg", PV, False),
    _hc(HYPERVISOR_sched_op, "sched_op", "cmd arg", ALL, True),
    _hc(HYPERVISOR_callback_op, "callback_op", "cmd arg", PV, True),
    _hc(HYPERVISOR_xenoprof_op, "xenoprof_op", None, NONE, False),  # dropped in Xen 4.22
    _hc(HYPERVISOR_event_channel_op, "event_channel_op", "cmd arg", ALL, True),
    _hc(HYPERVISOR_physdev_op, "physdev_op", "cmd arg", ALL, False),
    _hc(HYPERVISOR_hvm_op, "hvm_op", "op arg", ALL, False),
    _hc(HYPERVISOR_sysctl, "sysctl", "u_sysctl", ALL, False),
    _hc(HYPERVISOR_domctl, "domctl", "u_domctl", ALL, False),
    _hc(HYPERVISOR_kexec_op, "kexec_op", "op uarg", PV, False),
    _hc(HYPERVISOR_tmem_op, "tmem_op", None, NONE, False),  # removed; always fails
    _hc(HYPERVISOR_argo_op, "argo_op", "cmd arg1 arg2 arg3 arg4", ALL, False),
    _hc(HYPERVISOR_xenpmu_op, "xenpmu_op", "op arg", ALL, False),
    _hc(HYPERVISOR_dm_op, "dm_op", "domid nr_bufs bufs", ALL, False),
    _hc(HYPERVISOR_hypfs_op, "hypfs_op", "cmd arg1 arg2 arg3 arg4", ALL, False),
    _hc(HYPERVISOR_mca, "mca", "u_xen_mc", PV, False),  # arch_0
    _hc(HYPERVISOR_paging_domctl_cont, "paging_domctl_cont", "u_domctl", ALL, False),  # arch_1
)

HYPERCALLS: dict[int, Hypercall] = {h.nr: h for h in _ENTRIES}
_BY_NAME: dict[str, Hypercall] = {h.name: h for h in _ENTRIES}
#: hypercalls by name (public: tracing looks counted calls up by their meter name)
HYPERCALLS_BY_NAME = _BY_NAME

# Parameters each hypercall handler takes. Xen's call_handlers_*() pass exactly this many of the
# five argument registers; the rest are ignored. HYPERVISOR_iret takes none (its frame is on the
# guest stack). 32-bit guests (the compat_* prototypes) split 64-bit values into two registers.
HYPERCALL_NARGS: dict[str, int] = {h.name: len(h.args) for h in _ENTRIES if h.args is not None}
HYPERCALL_NARGS_COMPAT: dict[str, int] = {h.name: len(h.args32) for h in _ENTRIES if h.args32 is not None}


def hypercall_nargs(name: str, guest_type: str) -> int:
    """How many argument registers Xen hands to hypercall ``name`` for ``guest_type`` (5 when
    the name is unknown or has no prototype)."""
    entry = _BY_NAME.get(name)
    return entry.nargs(guest_type) if entry is not None else HYPERCALL_MAX_ARGS


def entry(nr: int) -> Hypercall | None:
    return HYPERCALLS.get(nr)


def by_name(name_: str) -> Hypercall:
    try:
        return _BY_NAME[name_]
    except KeyError:
        raise KeyError(f"no hypercall named {name_!r}") from None


def name(nr: int) -> str | None:
    h = HYPERCALLS.get(nr)
    return h.name if h else None


def number(name_: str) -> int:
    return by_name(name_).nr


def allowed(nr: int, guest_type: str) -> bool:
    h = HYPERCALLS.get(nr)
    return bool(h) and guest_type in h.guests


def handler_names() -> dict[int, str]:
    """``{number: "do_<name>"}`` of every hypercall pvsim handles."""
    return {h.nr: h.handler for h in _ENTRIES if h.handler is not None}


def xen_symbol(nr: int) -> str:
    """``__HYPERVISOR_<name>`` as xen.h spells it."""
    n = name(nr)
    return f"__HYPERVISOR_{n}" if n else f"__HYPERVISOR_arch_{nr - 48}"
