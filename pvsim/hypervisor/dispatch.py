"""Hypercall handler registration and the entry price: what the dispatcher and the handlers share.

Design note
-----------
A handler module registers ``do_<name>`` with :func:`handler`; :func:`dispatch_table` binds every
:mod:`hypercalls.table` entry that names a handler to the registered function (and refuses a
registered handler the table does not name, or a named one nobody registered). :data:`ENTRY_PRICE`
is the profile keys of one guest -> Xen -> guest transition per guest type (PV64 ``syscall``, PV32
``int $0x82``, an HVM ``vmcall`` exit and entry), applied by
:meth:`pvsim.hypervisor.hypervisor.Hypervisor.charge_hypercall_entry`.
"""

from __future__ import annotations

from typing import Callable

from hypercalls import table as hc_table

HandlerFn = Callable[..., int]
REGISTERED: dict[str, HandlerFn] = {}  # "do_<name>" -> function, filled by @handler


class HandlerTableError(RuntimeError):
    """The registered handlers and the handler names of :mod:`hypercalls.table` disagree."""


def handler(name: str):
    """Register ``do_<name>`` as the handler of hypercall ``name`` (which the table must name)."""
    hc = hc_table.by_name(name)

    def deco(fn: HandlerFn) -> HandlerFn:
        if fn.__name__ != f"do_{name}":
            raise ValueError(f"handler for {name} must be called do_{name}, got {fn.__name__}")
        if hc.handler != fn.__name__:
            raise HandlerTableError(f"{fn.__module__}.{fn.__name__} is registered but hypercalls.table "
                                    f"gives {name} no handler; add it to the table")
        REGISTERED[fn.__name__] = fn
        return fn

    return deco


def dispatch_table(registered: dict[str, HandlerFn]) -> dict[int, HandlerFn]:
    """``{number: handler}`` for every table entry that names a handler. Every named handler must
    be registered and every registered handler must be named by the table."""
    names = hc_table.handler_names()
    missing = sorted(set(names.values()) - set(registered))
    unknown = sorted(set(registered) - set(names.values()))
    if missing or unknown:
        raise HandlerTableError(f"hypercalls.table names handlers nobody registered: {missing}; "
                                f"registered handlers the table does not name: {unknown}")
    return {nr: registered[fn_name] for nr, fn_name in names.items()}


# Entry/exit price per guest type (profile keys), applied by Hypervisor.charge_hypercall_entry.
# HVM hypercalls are a vmcall exit + entry.
ENTRY_PRICE = {
    "pv64": ("xen.hypercall_entry_pv64_cycles",),
    "pv32": ("xen.hypercall_entry_pv32_cycles",),
    "hvm64": ("hvm.vmexit_cycles", "hvm.vmentry_cycles"),
    "hvm32": ("hvm.vmexit_cycles", "hvm.vmentry_cycles"),
}


HVM_GUEST_TYPES = ("hvm32", "hvm64")
