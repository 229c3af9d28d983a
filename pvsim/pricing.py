"""Pricing an operation: run its actions through a mode's guest kernel on a scratch hypervisor.

Design note
-----------
:func:`op_cost` builds a hypervisor, one domain of the mode's guest type and its platform, runs the
op's actions twice to warm the kernel's structures (the steady state a benchmark loop measures), then
runs each action once more, metered (actions with ``times`` are run once and scaled: the per-action
work of a warm kernel does not depend on the repetition), and returns the op's work as a
:class:`~pvsim.meter.Meter`. :func:`op_cost` prices that meter under a profile. Results are cached
per (op, mode, profile, options): a simulation prices each op type once and then multiplies, which is
how a burst of millions of guest operations costs one SimPy event.

The ``fill`` action (kernel path length not otherwise described) is derived from the op's native
reference latency on its reference profile; see :mod:`pvsim.workloads.base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from guest_kernels.registry import MODES
from pvsim.errors import ScenarioError
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.hypervisor.platform import HvPlatform
from pvsim.meter import Meter
from pvsim.profile import Profile, load_profile
from pvsim.workloads import get as get_op
from pvsim.workloads.base import Op


@dataclass(frozen=True)
class OpCost:
    """One op priced under one profile: cycles per breakdown cause, and event counts."""

    op: str
    mode: str
    cycles: dict[str, float]
    counts: dict[str, float]

    @property
    def cpu_cycles(self) -> float:
        return sum(v for k, v in self.cycles.items() if not k.startswith("idle"))

    @property
    def wait_cycles(self) -> float:
        return sum(v for k, v in self.cycles.items() if k.startswith("idle"))

    @property
    def total_cycles(self) -> float:
        return sum(self.cycles.values())


def check_mode(mode: str, profile: Profile, field: str = "mode") -> None:
    if mode not in MODES:
        raise ScenarioError(field, f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    if MODES[mode].needs_vtx and not profile.has("hvm.vmexit_cycles"):
        raise ScenarioError(field, f"mode {mode!r} needs VT-x/AMD-V, which profile {profile.name!r} lacks")
    if MODES[mode].paging == "hap" and profile.has("hvm.hap_available_count") \
            and profile.value("hvm.hap_available_count") < 1:
        raise ScenarioError(field, f"mode {mode!r} needs EPT/NPT, which profile {profile.name!r} lacks")


def make_kernel(mode: str, profile: Profile, options: dict | None = None, *, hv: Hypervisor | None = None,
                domid: int = 1):
    """A guest kernel of ``mode`` bound to a fresh (or given) hypervisor; returns (hv, kernel)."""
    info = MODES[mode]
    hv = hv or Hypervisor(profile)
    guest_type = info.guest_type if info.guest_type != "none" else "native"
    dom = hv.add_domain(Domain(domid, f"dom{domid}", mode, guest_type, nr_vcpus=1, tot_pages=262144))
    platform = HvPlatform(hv, dom.vcpus[0])
    opts = dict(options or {})
    mmu_choice = opts.pop("mmu", "structural")
    if mmu_choice == "structural":
        platform.mmu = _structural_mmu(mode, platform, opts)
    elif mmu_choice != "counted":
        raise ScenarioError("options.mmu", f"must be 'structural' or 'counted', got {mmu_choice!r}")
    return hv, info.kernel(platform, **opts)


def _structural_mmu(mode: str, platform, opts: dict):
    """The guest-side MMU over real page tables (pvsim.mm), when that subsystem is installed."""
    try:
        from pvsim.mm.platform import attach_mmu
    except ImportError:
        return None
    return attach_mmu(mode, platform, **{k: v for k, v in opts.items() if k in ("batch",)})


# Passes run unmetered before the measured one: two, so that an op alternating between two
# processes (a context-switch ping-pong) has touched both address spaces, as a benchmark loop has.
WARMUP_PASSES = 2


def _run_actions(op: Op, mode: str, profile: Profile, options: dict, include_fill: bool) -> Meter:
    """The op's work on a warm kernel: its actions run twice to warm the structures (page tables
    populated, shadows built, tables pinned), then once more, metered."""
    hv, kernel = make_kernel(mode, profile, options)
    with hv.metering(Meter()):
        for _ in range(WARMUP_PASSES):
            for a in op.actions:
                if a.name != "fill":
                    kernel.act(a.name, *a.args)
    total = Meter()
    for a in op.actions:
        if a.name == "fill":
            if include_fill:
                mmu = options.get("mmu", "structural")
                total.add("kernel", "cycles", fill_cycles(op.name if not a.args else a.args[0], mmu) * a.times)
            continue
        m = Meter()
        with hv.metering(m):
            try:
                kernel.act(a.name, *a.args)
            except AttributeError as e:
                if "unknown guest-kernel action" in str(e):
                    raise ScenarioError(f"workload[{op.name}]", f"unknown action {a.name!r}") from None
                raise
        total.merge(m, a.times)
    return total


@lru_cache(maxsize=None)
def fill_cycles(op_name: str, mmu: str = "structural") -> float:
    """Kernel path length of ``op_name`` not described by its actions, from its native reference
    (derived with the same MMU path the runs use, so native reproduces the reference exactly)."""
    op = get_op(op_name)
    if op.native_ref is None:
        return 0.0
    ref_profile, native_us = op.native_ref
    prof = load_profile(ref_profile)
    described = _run_actions(op, "native", prof, {"mmu": mmu}, include_fill=False).total_cycles(prof)
    fill = native_us * 1000.0 * prof.clock_ghz - described
    if fill < -1e-6:
        raise ValueError(f"{op_name}: described native work {described:.0f} cycles exceeds the native reference")
    return max(fill, 0.0)


def _opts_key(options: dict | None) -> tuple:
    return tuple(sorted((options or {}).items()))


@lru_cache(maxsize=4096)
def _op_cost_cached(op_name: str, mode: str, profile_key: str, opts: tuple) -> OpCost:
    profile = load_profile(profile_key)
    op = get_op(op_name)
    meter = _run_actions(op, mode, profile, dict(opts), include_fill=True)
    return OpCost(op_name, mode, meter.price(profile), dict(meter.counts))


def op_cost(op_name: str, mode: str, profile: Profile | str, options: dict | None = None) -> OpCost:
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    check_mode(mode, prof)
    return _op_cost_cached(op_name, mode, prof.key, _opts_key(options))
