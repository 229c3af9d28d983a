"""The scheduler interface, shaped like Xen's ``struct scheduler`` ops table, and the registry.

Design note
-----------
Models ``xen/common/sched/private.h`` (``struct scheduler``): a scheduler plugs in by its Xen
name (``opt_name``: ``credit``, ``credit2``, ``rtds``, ``null``, plus the historical ``bvt`` and
the toy ``rr``) and implements hooks that ``core.c`` calls:

* ``insert_unit`` / ``remove_unit``: a unit joins or leaves the scheduler;
* ``wake`` / ``sleep``: a unit became runnable / stopped being runnable (``vcpu_wake`` and
  ``vcpu_sleep_nosync``); ``sleep`` of a running unit must raise a reschedule on its pCPU;
* ``yield_``: ``SCHEDOP_yield``;
* ``do_schedule(cpu, now, prev) -> (unit | None, slice_ns | None)``: the next unit for ``cpu``
  (``None`` = the idle unit) and its time slice (``None`` = no slice timer, ``next_time = -1``).
  ``prev`` is the unit that was running (``None`` = idle). A running unit is not on any runqueue:
  if ``prev`` is still runnable the scheduler must requeue it unless it picks it again;
* ``pick_cpu``: CPU placement (``pick_resource``);
* ``adjust`` / ``adjust_global``: per-domain and per-pool parameters (``xl sched-*``);
* ``context_saved``: ``prev`` left its pCPU.

A scheduler reaches the dispatcher through ``self.runner``: ``runner.now``,
``runner.curr(cpu)``, ``runner.raise_softirq(cpu)`` (``cpu_raise_softirq(SCHEDULE_SOFTIRQ)``),
``runner.timer(delay_ns, fn)``, ``runner.pause(unit)`` / ``runner.unpause(unit)`` (parking).
"""

from __future__ import annotations

import importlib
from typing import Callable

from pvsim.core.errors import ScenarioError
from pvsim.sched.params import validate_sched_params

# XEN_SCHEDULER_* ids (xen/include/public/domctl.h). The trace ids of the schedulers' events
# (TRC_SCHED_CLASS_EVT) are in hypercalls.trace.
XEN_SCHEDULER_CREDIT = 5
XEN_SCHEDULER_CREDIT2 = 6
XEN_SCHEDULER_ARINC653 = 7
XEN_SCHEDULER_RTDS = 8
XEN_SCHEDULER_NULL = 9


class Scheduler:
    """Base class: every hook has a sensible default so a scheduler overrides only what it needs."""

    name = "?"
    sched_id: int | None = None

    def __init__(self, params: dict | None = None):
        self.params = validate_sched_params(self.name, params or {}, "scheduler.params", scope="global")
        self.runner = None

    # --- life cycle -------------------------------------------------------------------------
    def attach(self, runner) -> None:
        """Called once by HostRunner.__init__ (``init`` + ``init_pdata`` for each pCPU)."""
        self.runner = runner
        self.n_pcpus = runner.n_pcpus

    def start(self, now: int) -> None:
        """Called by HostRunner.start() before the first schedule: arm periodic timers."""

    def alloc_domdata(self, dom) -> None:
        """A new domain (``alloc_domdata``)."""

    # --- unit hooks ---------------------------------------------------------------------------
    def insert_unit(self, unit) -> None:
        raise NotImplementedError

    def remove_unit(self, unit) -> None:
        raise NotImplementedError

    def wake(self, unit) -> None:
        raise NotImplementedError

    def sleep(self, unit) -> None:
        raise NotImplementedError

    def yield_(self, unit) -> None:
        pass

    def do_schedule(self, cpu: int, now: int, prev):
        raise NotImplementedError

    def pick_cpu(self, unit) -> int:
        """Default placement: stay where it was if allowed, else the first allowed pCPU."""
        if unit.allowed(unit.cpu):
            return unit.cpu
        return min(unit.hard)

    def context_saved(self, unit) -> None:
        pass

    def affinity_changed(self, unit) -> None:
        """Hard/soft affinity changed (``aff_cntl``); the runner migrates the unit if needed."""

    # --- control ------------------------------------------------------------------------------
    def adjust(self, dom, params: dict) -> None:
        """Per-domain parameters (already validated): default handles weight and cap."""
        if "weight" in params:
            dom.weight = params["weight"]
        if "cap" in params:
            dom.cap = params["cap"]

    def adjust_global(self, params: dict) -> None:
        p = validate_sched_params(self.name, params, "scheduler.params", scope="global",
                                  defaults=False, n_pcpus=self.n_pcpus)
        self.params.update(p)

    def adjust_units(self, units, params: dict) -> None:
        """Per-vCPU parameters (``xl sched-rtds -v``); only schedulers with vCPU parameters."""
        raise NotImplementedError(f"{self.name} has no per-vCPU parameters")

    def dom_info(self, dom) -> dict:
        return {"weight": dom.weight, "cap": dom.cap}

    def unit_info(self, unit) -> dict:
        return {}

    def global_info(self) -> dict:
        return dict(self.params)

    # helpers
    @staticmethod
    def _cpus_of(unit, n: int):
        return range(n) if unit.hard is None else sorted(unit.hard)


_REGISTRY: dict[str, Callable[[dict | None], Scheduler]] = {}


def register_scheduler(name: str):
    def deco(cls):
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


SCHEDULER_NAMES = ("rr", "credit", "credit2", "rtds", "null", "bvt")


def _load(name: str) -> None:
    # import the scheduler's module for its registration (explicit, never at package import)
    if name in SCHEDULER_NAMES and name not in _REGISTRY:
        importlib.import_module(f"pvsim.sched.{name}")


def make_scheduler(name: str, params: dict | None = None) -> Scheduler:
    """A scheduler by its Xen name: ``rr``, ``credit``, ``credit2``, ``rtds``, ``null``, ``bvt``."""
    _load(name)
    if name not in _REGISTRY:
        raise ScenarioError("scheduler.name", f"unknown scheduler {name!r}; allowed: {', '.join(SCHEDULER_NAMES)}")
    return _REGISTRY[name](params)
