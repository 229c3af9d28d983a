"""The guest-visible ABI has one home, ``hypercalls/``: no module of ``pvsim/`` or
``guest_kernels/`` defines an ABI constant or hard-codes a hypercall number, and the dispatcher,
the argument counts and the entry pricing all come from ``hypercalls.table``."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from hypercalls import table as T
from hypercalls import trace as TRC

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("pvsim", "guest_kernels")

# Module-level names with these prefixes are ABI constants: hypercalls/ alone defines them.
ABI_PREFIXES = (
    "DOMID_", "RUNSTATE_", "MMUEXT_", "MMU_", "UVMF_", "EVTCHNOP_", "GNTTABOP_", "GNTST_",
    "GNTMAP_", "GNTCOPY_", "GTF_", "SCHEDOP_", "VCPUOP_", "XENMEM_", "XENVER_", "VIRQ_",
    "CALLBACKTYPE_", "TRC_", "HYPERVISOR_", "SHUTDOWN_", "VMASST_",
)

# Names that carry an ABI prefix but are not guest ABI (module path, name) -> why.
NOT_ABI = {
    ("pvsim/hypervisor/handlers/core.py", "SHUTDOWN_CODE_INVALID"):
        "Xen-internal sentinel of d->shutdown_code (xen/include/xen/sched.h)",
    ("pvsim/hypervisor/handlers/core.py", "_XENVER_PUBLIC"):
        "the XSM dummy policy's set of unrestricted XENVER_* commands (xsm/dummy.h)",
    ("pvsim/hypervisor/handlers/core.py", "_XENVER_HOOK"):
        "the XSM dummy policy's set of XENVER_* commands behind the hook (xsm/dummy.h)",
    ("guest_kernels/base.py", "MMU_ACTIONS"): "guest-kernel action names, not a Xen name",
}


def _is_abi_name(name: str) -> bool:
    # Xen spells bit numbers with a leading underscore (_GTF_readonly, _GNTMAP_host_map)
    return name.lstrip("_").startswith(ABI_PREFIXES)


def _targets(node: ast.stmt) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        return [node.target]
    return []


def _hypercall_number_arg(call: ast.Call) -> ast.expr | None:
    """The argument of a ``.hypercall(...)`` call that is the hypercall number:
    ``Hypervisor.hypercall(vcpu, nr, *args)`` takes the vCPU first, the guest-side entries
    (``platform.hypercall(name, ...)``, ``VcpuOS.hypercall(nr, ...)``) take the number first."""
    for kw in call.keywords:
        if kw.arg == "nr":
            return kw.value
    if not call.args:
        return None
    first = call.args[0]
    if "vcpu" in ast.unparse(first).lower():
        return call.args[1] if len(call.args) > 1 else None
    return first


def abi_violations(source: str, path: str = "<string>") -> list[str]:
    """Every module-level assignment of an ABI-prefixed name and every ``.hypercall(`` call
    whose hypercall number is an integer literal, as ``"path:line: message"``."""
    tree = ast.parse(source, filename=path)
    out = []
    for node in tree.body:
        for target in _targets(node):
            for n in ast.walk(target):
                if isinstance(n, ast.Name) and _is_abi_name(n.id) and (path, n.id) not in NOT_ABI:
                    out.append(f"{path}:{node.lineno}: defines ABI constant {n.id} (its home is hypercalls/)")
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "hypercall":
            nr = _hypercall_number_arg(n)
            if isinstance(nr, ast.Constant) and isinstance(nr.value, int) and not isinstance(nr.value, bool):
                out.append(f"{path}:{n.lineno}: hard-coded hypercall number {nr.value} "
                           f"(use hypercalls.table.HYPERVISOR_{T.name(nr.value) or '<name>'})")
    return out


def _modules():
    for top in SCANNED:
        for p in sorted((ROOT / top).rglob("*.py")):
            yield p.relative_to(ROOT).as_posix(), p.read_text()


def test_abi_constants_are_defined_only_in_hypercalls():
    found = [v for path, src in _modules() for v in abi_violations(src, path)]
    assert not found, "\n".join(found)


def test_the_exceptions_still_exist():
    """An exception for a name that has gone would hide a new definition of the same name."""
    defined = set()
    for path, src in _modules():
        for node in ast.parse(src).body:
            for target in _targets(node):
                defined |= {(path, n.id) for n in ast.walk(target) if isinstance(n, ast.Name)}
    assert set(NOT_ABI) <= defined


@pytest.mark.parametrize("src", [
    "DOMID_SELF = 0x7FF0\n",
    "_GTF_readonly = 2\n",
    "TRC_SCHED_SWITCH: int = 0x0002800A\n",
    "RUNSTATE_running, RUNSTATE_runnable = 0, 1\n",
    "HYPERVISOR_event_channel_op = 32\n",
    "def f(hv, vcpu):\n    return hv.hypercall(vcpu, 32, 4, None)\n",
    "def f(os_):\n    return os_.hypercall(20, 5, [], 0)\n",
    "def f(self):\n    return self.hv.hypercall(self.vcpu, nr=29)\n",
])
def test_the_checker_catches_a_deliberate_violation(src):
    assert abi_violations(src, "pvsim/example.py")


@pytest.mark.parametrize("src", [
    "from hypercalls.ops import DOMID_SELF\nx = DOMID_SELF\n",
    "def f():\n    DOMID_SELF = 0x7FF0\n    return DOMID_SELF\n",  # not module level
    "class K:\n    RUNSTATE_running = 0\n",
    "def f(p):\n    return p.hypercall('set_timer_op', 10_000_000)\n",
    "def f(hv, vcpu, nr):\n    return hv.hypercall(vcpu, nr, 1, 2)\n",
    "def f(d):\n    return d.hypercall(HYPERVISOR_grant_table_op, 5, [], 0)\n",
])
def test_the_checker_lets_ordinary_code_through(src):
    assert abi_violations(src, "pvsim/example.py") == []


def test_the_shims_are_gone():
    assert importlib.util.find_spec("pvsim.io.abi") is None
    assert importlib.util.find_spec("pvsim.mm.constants") is None


# -------------------------------------------------------------------------------- the table
def test_every_number_has_its_xen_named_constant():
    for nr, h in T.HYPERCALLS.items():
        assert h.nr == nr
        assert getattr(T, f"HYPERVISOR_{h.name}") == nr
        assert T.number(h.name) == nr and T.name(nr) == h.name
    assert T.HYPERVISOR_event_channel_op == 32 and T.HYPERVISOR_grant_table_op == 20
    assert T.HYPERVISOR_mca == T.HYPERVISOR_arch_0 == 48


def test_argument_counts_derive_from_the_prototypes():
    for h in T.HYPERCALLS.values():
        if h.args is None:
            assert h.name not in T.HYPERCALL_NARGS
            assert T.hypercall_nargs(h.name, "pv64") == 5
            continue
        assert T.HYPERCALL_NARGS[h.name] == len(h.args) == T.hypercall_nargs(h.name, "pv64")
        assert T.hypercall_nargs(h.name, "hvm64") == len(h.args)
        assert T.HYPERCALL_NARGS_COMPAT[h.name] == len(h.args32) == T.hypercall_nargs(h.name, "pv32")
        assert T.hypercall_nargs(h.name, "hvm32") == len(h.args32)
    # a 32-bit guest passes 64-bit values in two registers
    assert T.by_name("set_timer_op").args == ("timeout",)
    assert T.by_name("set_timer_op").args32 == ("lo", "hi")
    assert T.hypercall_nargs("update_va_mapping", "pv32") == 4
    assert T.hypercall_nargs("update_va_mapping", "pv64") == 3
    assert T.hypercall_nargs("iret", "pv64") == 0
    assert T.hypercall_nargs("no_such_call", "pv64") == 5


def test_the_dispatcher_is_built_from_the_table(hv):
    from pvsim.hypervisor.hypervisor import handlers

    hs = handlers()
    names = T.handler_names()
    assert set(hs) == set(names)
    for nr, fn in hs.items():
        assert fn.__name__ == names[nr] == f"do_{T.name(nr)}"
    # a table entry without a handler is -ENOSYS, even for a guest type that may make the call
    assert T.by_name("physdev_op").handler is None
    assert hv.hypercall(hv.domains[1].vcpus[0], T.HYPERVISOR_physdev_op, 0, None) == -38


def test_the_dispatch_table_refuses_a_mismatch():
    from pvsim.hypervisor.dispatch import REGISTERED as _REGISTERED
    from pvsim.hypervisor.dispatch import HandlerTableError, dispatch_table

    registered = dict(_REGISTERED)
    assert dispatch_table(registered)
    missing = {k: v for k, v in registered.items() if k != "do_console_io"}
    with pytest.raises(HandlerTableError, match="do_console_io"):
        dispatch_table(missing)
    with pytest.raises(HandlerTableError, match="do_set_gdt"):
        dispatch_table({**registered, "do_set_gdt": lambda hv, vcpu, *a: 0})


def test_a_handler_the_table_does_not_name_cannot_register():
    from pvsim.hypervisor.dispatch import HandlerTableError, handler

    def do_set_gdt(hv, vcpu, frame_list=None, entries=0):
        return 0

    with pytest.raises(HandlerTableError):
        handler("set_gdt")(do_set_gdt)
    with pytest.raises(KeyError):
        handler("no_such_call")


# -------------------------------------------------------------------------------- entry price
@pytest.mark.parametrize("guest_type,prices", [
    ("pv64", ("xen.hypercall_entry_pv64_cycles",)),
    ("pv32", ("xen.hypercall_entry_pv32_cycles",)),
    ("hvm64", ("hvm.vmexit_cycles", "hvm.vmentry_cycles")),
])
def test_counted_entries_are_priced_like_dispatched_ones(guest_type, prices):
    from pvsim.hypervisor.domain import Domain
    from pvsim.hypervisor.hypervisor import ENTRY_PRICE, Hypervisor
    from pvsim.hypervisor.platform import HvPlatform

    assert ENTRY_PRICE[guest_type] == prices
    hv = Hypervisor()
    dom = hv.add_domain(Domain(1, "d", "x", guest_type))
    HvPlatform(hv, dom.vcpus[0]).charge_hypercall("mmu_update", 3)
    assert dict(hv.meter.work) == {("hypercall.mmu_update", p): 3 for p in prices}
    vmcall = {"exit.vmcall": 3} if guest_type.startswith("hvm") else {}  # an HVM hypercall is a VMCALL exit
    assert dict(hv.meter.counts) == {"hypercall.mmu_update": 3, **vmcall}
    hv.hypercall(dom.vcpus[0], T.HYPERVISOR_xen_version, 0, None)
    assert all(hv.meter.work[("hypercall.xen_version", p)] == 1 for p in prices)
    assert hv.meter.counts["hypercall.xen_version"] == 1


# -------------------------------------------------------------------------------- trace ids
def test_trace_ids_are_trace_h():
    assert TRC.TRC_SCHED_RUNSTATE_CHANGE == 0x00021001
    assert TRC.TRC_SCHED_SWITCH == 0x0002800A
    assert TRC.TRC_SCHED_CLASS_EVT(TRC.TRC_SCHED_CSCHED, 2) == 0x00022002
    assert TRC.TRC_CSCHED2_LOAD_BALANCE == 0x00022000 | (1 << 9) | 17
    assert TRC.TRC_RTDS_BUDGET_REPLENISH == 0x00022000 | (4 << 9) | 4
