"""Hypercall numbers, names, and which guest type may make which call.

Numbers and names: ``__HYPERVISOR_*`` in ``xen/include/public/xen.h``. Availability: the
pv32/pv64/hvm32/hvm64 columns of ``xen/include/hypercall-defs.c`` (x86). A call a guest type may
not make has no entry in its dispatch table, so Xen returns ``-ENOSYS``.
"""

from __future__ import annotations

PV = frozenset({"pv32", "pv64"})
HVM = frozenset({"hvm32", "hvm64"})
ALL = PV | HVM
NONE: frozenset[str] = frozenset()

# number -> (name, guest types that may call it)
HYPERCALLS: dict[int, tuple[str, frozenset]] = {
    0: ("set_trap_table", PV),
    1: ("mmu_update", PV),
    2: ("set_gdt", PV),
    3: ("stack_switch", PV),
    4: ("set_callbacks", PV),
    5: ("fpu_taskswitch", PV),
    6: ("sched_op_compat", PV),
    7: ("platform_op", ALL),
    8: ("set_debugreg", PV),
    9: ("get_debugreg", PV),
    10: ("update_descriptor", PV),
    12: ("memory_op", ALL),
    13: ("multicall", ALL),
    14: ("update_va_mapping", PV),
    15: ("set_timer_op", ALL),
    16: ("event_channel_op_compat", PV),
    17: ("xen_version", ALL),
    18: ("console_io", ALL),
    19: ("physdev_op_compat", PV),
    20: ("grant_table_op", ALL),
    21: ("vm_assist", ALL),
    22: ("update_va_mapping_otherdomain", PV),
    23: ("iret", PV),
    24: ("vcpu_op", ALL),
    25: ("set_segment_base", PV),  # pv32 gets -ENOSYS from the handler
    26: ("mmuext_op", ALL),
    27: ("xsm_op", ALL),
    28: ("nmi_op", PV),
    29: ("sched_op", ALL),
    30: ("callback_op", PV),
    31: ("xenoprof_op", NONE),  # dropped in Xen 4.22
    32: ("event_channel_op", ALL),
    33: ("physdev_op", ALL),
    34: ("hvm_op", ALL),
    35: ("sysctl", ALL),
    36: ("domctl", ALL),
    37: ("kexec_op", PV),
    38: ("tmem_op", NONE),  # removed; always fails
    39: ("argo_op", ALL),
    40: ("xenpmu_op", ALL),
    41: ("dm_op", ALL),
    42: ("hypfs_op", ALL),
    48: ("mca", PV),  # arch_0
    49: ("paging_domctl_cont", ALL),  # arch_1
}

_BY_NAME = {name: nr for nr, (name, _) in HYPERCALLS.items()}

NR_hypercalls = 64  # hypercall page: 128 stubs, numbers below 64 used on x86


def name(nr: int) -> str | None:
    entry = HYPERCALLS.get(nr)
    return entry[0] if entry else None


def number(name_: str) -> int:
    try:
        return _BY_NAME[name_]
    except KeyError:
        raise KeyError(f"no hypercall named {name_!r}") from None


def allowed(nr: int, guest_type: str) -> bool:
    entry = HYPERCALLS.get(nr)
    return bool(entry) and guest_type in entry[1]


def xen_symbol(nr: int) -> str:
    """``__HYPERVISOR_<name>`` as xen.h spells it."""
    n = name(nr)
    return f"__HYPERVISOR_{n}" if n else f"__HYPERVISOR_arch_{nr - 48}"
