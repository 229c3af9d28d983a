"""The schedulable unit (Xen's ``struct sched_unit``, one per vCPU) and the per-domain record.

Design note
-----------
Models the generic part of ``xen/include/xen/sched.h`` / ``xen/common/sched/private.h`` that
every scheduler sees: the unit's processor (``res``), ``is_running``, the pause count and the
blocked flag that together make ``unit_runnable()``, the hard and soft affinity masks, and the
runstate accounting of ``vcpu_runstate_change()`` in ``core.c`` (``running`` 0, ``runnable`` 1,
``blocked`` 2, ``offline`` 3, from ``xen/include/public/vcpu.h``). A scheduler keeps its own
per-unit state in ``unit.priv`` (like ``unit->priv``) and per-domain state in ``dom.priv``.

Simplifications: one vCPU per unit (``sched-gran=cpu``); no cpupools (one pool, ``Pool-0``).
"""

from __future__ import annotations

from typing import Any

from hypercalls.ops import RUNSTATE_offline


class SchedDomain:
    """Per-domain scheduling record (``struct domain`` fields the schedulers use)."""

    __slots__ = ("domid", "name", "weight", "cap", "units", "priv", "params")

    def __init__(self, domid: int, name: str, weight: int, cap: int):
        self.domid = domid
        self.name = name
        self.weight = weight
        self.cap = cap
        self.units: list[Unit] = []
        self.priv: Any = None
        self.params: dict = {}


class Unit:
    """One vCPU as the schedulers see it."""

    __slots__ = (
        "uid", "dom", "vcpu_id", "name", "behaviour", "params",
        "hard", "soft", "cpu", "is_running", "blocked", "pause_count", "done",
        "runstate", "state_entry", "rs_time", "remaining", "created_ns",
        "wake_ns", "runnable_since", "last_run_start", "priv",
        "ctx_in", "migrations", "wake_lat", "ever_ran", "block_gen", "migrating",
        "migrate_pending", "ran_on",
    )

    def __init__(self, uid: int, dom: SchedDomain, vcpu_id: int, behaviour, name: str,
                 hard: frozenset | None, soft: frozenset | None, params: dict, now: int):
        self.uid = uid
        self.dom = dom
        self.vcpu_id = vcpu_id
        self.name = name
        self.behaviour = behaviour
        self.params = params
        self.hard = hard  # None = all pCPUs
        self.soft = soft  # None = no soft affinity
        self.cpu = 0
        self.is_running = False
        self.blocked = False
        self.pause_count = 0
        self.done = False
        self.runstate = RUNSTATE_offline  # until HostRunner.start() brings it online
        self.state_entry = now
        self.rs_time = [0, 0, 0, 0]
        self.remaining = 0  # ns left of the current Run demand
        self.created_ns = now
        self.wake_ns: int | None = None
        self.runnable_since = now
        self.last_run_start = now
        self.priv: Any = None
        self.ctx_in = 0
        self.migrations = 0
        self.wake_lat: list[int] = []
        self.ever_ran = False
        self.block_gen = 0
        self.migrating = False  # waking from a migration, not from a block (no boost)
        self.migrate_pending = False
        self.ran_on = -1  # pCPU it last ran on (for migration counts)

    @property
    def domid(self) -> int:
        return self.dom.domid

    @property
    def runnable(self) -> bool:
        """``unit_runnable()``: not blocked, not paused, not offline for good."""
        return not self.blocked and self.pause_count == 0 and not self.done

    def allowed(self, cpu: int) -> bool:
        return self.hard is None or cpu in self.hard

    def __repr__(self) -> str:  # d1v0
        return f"d{self.dom.domid}v{self.vcpu_id}"
