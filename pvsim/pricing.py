"""Pricing an op mix: its OS actions run through the mode's guest kernel on a scratch hypervisor.

Design note
-----------
An op-mix step (a unit of lmbench fork, one compile job of kernel-build) is priced once per (its
actions, mode, profile, kernel and MMU options) and then charged per unit: that is how a burst of
thousands of guest operations costs one dispatcher decision. :func:`price_actions` wires a guest
on a scratch hypervisor with the same :func:`pvsim.wiring.attach_guest` the builder uses, runs the
actions twice unmetered to warm the kernel's structures (page tables populated, shadows built,
tables pinned: the steady state a benchmark loop measures), then each action once more, metered
(an action with ``times`` is run once and scaled: a warm kernel's per-action work does not depend
on the repetition), and returns cycles per breakdown cause and event counts. Device actions
(``disk_io``, ``net_io``) are not priced here: a run performs them on the domain's real devices.

The ``fill`` action (kernel path length not otherwise described) is derived from the op's native
reference latency on its reference profile: reference cycles minus the native price of the op's
other actions (:func:`fill_cycles`), with the same MMU path the runs use, so that native reproduces
its reference exactly. Only native measurements enter.

Simplifications: the priced op's effects on the live domain's state (its page tables, timers) are
not replayed in the run; the live domain's own kernel performs its device work, interrupts, idling
and the structural memory steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from guest_kernels.actions import DEVICE_ACTIONS
from guest_kernels.modes import MODES, missing_hardware
from pvsim.core.errors import ScenarioError
from pvsim.core.meter import Meter
from pvsim.core.profile import Profile, load_profile
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.scenario import DomainOptions, _has_hap
from pvsim.wiring import attach_guest
from pvsim.workloads import DEFAULT

# Passes run unmetered before the measured one: two, so that an op alternating between two
# processes (a context-switch ping-pong) has touched both address spaces, as a benchmark loop has.
WARMUP_PASSES = 2
SCRATCH_PAGES = 262144  # 1 GiB scratch domain


@dataclass(frozen=True)
class OpCost:
    """One op mix priced under one profile: cycles per breakdown cause, and event counts."""

    mode: str
    cycles: dict[str, float]
    counts: dict[str, float]

    @property
    def cpu_cycles(self) -> float:
        return sum(self.cycles.values())

    @property
    def total_cycles(self) -> float:
        return self.cpu_cycles


def _scratch_kernel(mode: str, profile: Profile, options: DomainOptions):
    spec = MODES[mode]
    hv = Hypervisor(profile)
    dom = hv.add_domain(Domain(1, "dom1", mode, spec.hypercall_type, nr_vcpus=1, tot_pages=SCRATCH_PAGES))
    _platform, kernel = attach_guest(hv, dom, spec, structural=options.mmu == "structural",
                                     kernel_options=options.kernel_options(), mmu_options=options.mmu_options())
    return hv, kernel


def _act(kernel, a, where: str) -> None:
    try:
        kernel.act(a.name, *a.args)
    except MemoryError:
        raise ScenarioError(where, f"action {a.name}{a.args} needs more memory than the guest has") from None


def run_actions(actions: tuple, mode: str, profile: Profile, options: DomainOptions, fill: float = 0.0,
                where: str = "workload") -> Meter:
    """The actions' work on a warm kernel of ``mode`` (``fill`` cycles per ``fill`` action)."""
    hv, kernel = _scratch_kernel(mode, profile, options)
    with hv.metering(Meter()):
        for _ in range(WARMUP_PASSES):
            for a in actions:
                if a.name != "fill" and a.name not in DEVICE_ACTIONS:
                    _act(kernel, a, where)
    total = Meter()
    for a in actions:
        if a.name in DEVICE_ACTIONS:
            continue
        if a.name == "fill":
            total.add("kernel", "cycles", fill * a.times)
            continue
        m = Meter()
        with hv.metering(m):
            _act(kernel, a, where)
        total.merge(m, a.times)
    return total


@lru_cache(maxsize=None)
def fill_cycles(ref_actions: tuple, native_ref: tuple, mmu: str = "structural") -> float:
    """Kernel path length (cycles) of an op whose measured native latency is ``native_ref`` =
    (profile, us) and whose described actions are ``ref_actions``."""
    ref_profile, native_us = native_ref
    prof = load_profile(ref_profile)
    opts = DomainOptions(mmu=mmu)
    described = run_actions(ref_actions, "native", prof, opts).total_cycles(prof)
    fill = native_us * 1000.0 * prof.clock_ghz - described
    if fill < -1e-6:
        raise ValueError(f"described native work {described:.0f} cycles exceeds the native reference {native_ref}")
    return max(fill, 0.0)


@lru_cache(maxsize=4096)
def _price_cached(actions: tuple, mode: str, profile_key: str, options: DomainOptions, fill: float) -> OpCost:
    prof = load_profile(profile_key)
    meter = run_actions(actions, mode, prof, options, fill)
    return OpCost(mode, meter.price(prof), dict(meter.counts))


def price_actions(actions: tuple, mode: str, profile: Profile, options: DomainOptions | None = None,
                  fill: float = 0.0) -> OpCost:
    """Cycles per cause and counts of one pass of ``actions`` in ``mode`` (memoised)."""
    return _price_cached(tuple(actions), mode, profile.key, options or DomainOptions(), float(fill))


def step_fill(step, spec, catalogue, mmu: str) -> float:
    """The ``fill`` cycles of an op-mix step of workload ``spec``: from its own native reference, or
    that of the workload its ``fill`` action names (``["fill", "lmbench.fork"]``)."""
    for a in step.body:
        if a.name == "fill":
            ref = spec if not a.args else catalogue.get(a.args[0], "fill")
            if ref.native_ref is None:
                raise ScenarioError(f"workloads.{spec.name}", f"a fill action needs a native_ref (on {ref.name!r})")
            ref_actions = tuple(x for s in catalogue.resolve(ref.name).action_steps() for x in s.body
                                if x.name != "fill")
            return fill_cycles(ref_actions, tuple(ref.native_ref), mmu)
    return 0.0


def price_step(step, spec, catalogue, mode: str, profile: Profile, options: DomainOptions) -> OpCost:
    """The memoised price of one op-mix step of workload ``spec`` in ``mode``."""
    return price_actions(step.body, mode, profile, options, step_fill(step, spec, catalogue, options.mmu))


def op_cost(workload: str, mode: str, profile: Profile | str, options: dict | DomainOptions | None = None,
            catalogue=None) -> OpCost:
    """The price of one unit of an op-mix workload (its action steps) in ``mode``: what a run charges
    per unit besides its device work (for tests, notebooks and tables)."""
    cat = catalogue if catalogue is not None else DEFAULT
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    opts = options if isinstance(options, DomainOptions) else DomainOptions(**(options or {}))
    spec = MODES[mode] if mode in MODES else None
    if spec is None:
        raise ScenarioError("mode", f"unknown mode {mode!r}")
    lack = missing_hardware(spec, prof.has("hvm.vmexit_cycles"), _has_hap(prof))
    if lack:
        raise ScenarioError("mode", f"mode {mode!r} needs {lack}, which profile {prof.name!r} lacks")
    w = cat.resolve(workload)
    cycles: dict[str, float] = {}
    counts: dict[str, float] = {}
    for st in w.action_steps():
        c = price_step(st, w.spec, cat, mode, prof, opts)
        for k, v in c.cycles.items():
            cycles[k] = cycles.get(k, 0.0) + v * st.times
        for k, v in c.counts.items():
            counts[k] = counts.get(k, 0.0) + v * st.times
    return OpCost(mode, cycles, counts)
