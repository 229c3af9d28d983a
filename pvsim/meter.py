"""The meter: how every layer reports work, and how work becomes time.

Design note
-----------
Guest kernels, hypercall handlers, the MMU structures and the I/O paths never hold a cost
constant. They report *work* to a :class:`Meter`: ``meter.add(cause, price, n)`` says "n units
of the primitive ``price`` (a profile key such as ``"hvm.vmexit_cycles"``) were spent on
``cause`` (a breakdown label such as ``"exit.cr_access"``)", and ``meter.count(name, n)`` counts
an event (``"hypercall.mmu_update"``, ``"tlb.miss"``). Pricing happens once, in
:meth:`Meter.price`, against a platform profile: so one workload description priced under two
profiles is the same work at two price lists, and the breakdown always sums to the priced total.

Breakdown causes are dotted; the first component is the coarse category used by charts:
``user``, ``kernel``, ``hypercall``, ``trap``, ``exit``, ``mmu`` (validation, shadow sync, walks,
flushes), ``world_switch``, ``device`` (emulation), ``io`` (rings, event channels, grants),
``dom0``, ``idle``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pvsim.profile import Profile

CATEGORIES = (
    "user", "kernel", "hypercall", "trap", "exit", "mmu", "world_switch", "device", "io",
    "dom0", "sched", "idle",
)


@dataclass
class Meter:
    work: Counter = field(default_factory=Counter)  # (cause, price) -> units
    counts: Counter = field(default_factory=Counter)  # event name -> count

    def add(self, cause: str, price: str, n: float = 1) -> None:
        if n:
            self.work[(cause, price)] += n

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] += n

    def merge(self, other: "Meter", times: float = 1) -> None:
        for k, v in other.work.items():
            self.work[k] += v * times
        for k, v in other.counts.items():
            self.counts[k] += v * times

    def price(self, profile: Profile) -> dict[str, float]:
        """Cycles per breakdown cause under ``profile``."""
        out: dict[str, float] = {}
        for (cause, price), n in self.work.items():
            c = n if price == "cycles" else n * profile.cycles(price)
            out[cause] = out.get(cause, 0.0) + c
        return out

    def total_cycles(self, profile: Profile) -> float:
        return float(sum(self.price(profile).values()))
