"""What a vCPU asks of the pCPU dispatcher next: ``Run``, ``Block``, ``Wait`` or ``Done``.

Design note
-----------
A vCPU's *behaviour* is any object with ``next(now_ns) -> Demand``. The dispatcher
(:class:`pvsim.sched.runner.HostRunner`) calls it only when the previous demand is over: a
``Run(ns)`` is CPU work that may be preempted (the dispatcher keeps the remainder and resumes it
later), ``Block(ns)`` blocks the vCPU for ``ns`` and then wakes it (``SCHEDOP_block`` plus a
``set_timer_op``), ``Wait(event)`` blocks it until a SimPy event fires (an event-channel upcall;
the event may already have fired, like ``vcpu_block`` returning at once when an event is pending
in ``xen/common/sched/core.c``), and ``Done()`` takes it offline for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Run:
    """``ns`` of CPU work (integer ns, >= 0); preemptible."""

    ns: int


@dataclass(frozen=True, slots=True)
class Block:
    """Blocked for ``ns`` (integer ns, >= 0), then woken."""

    ns: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Blocked until the SimPy ``event`` fires (it may already have fired)."""

    event: Any


@dataclass(frozen=True, slots=True)
class Done:
    """The vCPU goes offline for good."""


Demand = Run | Block | Wait | Done


class Behaviour(Protocol):
    def next(self, now_ns: int) -> Demand: ...
