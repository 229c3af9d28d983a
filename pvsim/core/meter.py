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
flushes), ``world_switch``, ``cache`` and ``tlb`` (the refill a context switch leaves:
pvsim.sched.footprint), ``device`` (emulation), ``io`` (rings, event channels, grants), ``dom0``,
``idle``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pvsim.core.profile import Profile

CATEGORIES = (
    "user", "kernel", "hypercall", "trap", "exit", "mmu", "world_switch", "cache", "tlb", "device", "io",
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

    def cache_touch(self, order: list, key, prefix: str) -> bool:
        """A least-recently-used cache held as ``order`` (oldest first): a hit moves ``key`` to the
        newest end and counts ``<prefix>_hit``; a miss counts ``<prefix>_miss`` and leaves ``order``
        to the caller (which evicts and inserts by its own rules). Returns whether it hit."""
        if key in order:
            order.remove(key)
            order.append(key)
            self.count(prefix + "_hit")
            return True
        self.count(prefix + "_miss")
        return False


class Pricer:
    """Profile prices in nanoseconds, cached per key (``"cycles"`` is the raw-cycle price)."""

    __slots__ = ("profile", "ghz", "_ns")

    def __init__(self, profile: Profile):
        self.profile = profile
        self.ghz = profile.clock_ghz
        self._ns: dict[str, float] = {"cycles": 1.0 / profile.clock_ghz}

    def ns(self, price: str) -> float:
        v = self._ns.get(price)
        if v is None:
            v = self._ns[price] = self.profile.cycles(price) / self.ghz
        return v

    def cycles(self, price: str) -> float:
        return self.ns(price) * self.ghz

    def value(self, key: str) -> float:
        return self.profile.value(key)


class LiveMeter(Meter):
    """A meter that prices work as it is reported (one profile, a running simulation).

    Same reporting interface as :class:`Meter` (``add``, ``count``, ``merge``), so guest kernels,
    handlers and the MMU report to it unchanged; it keeps nanoseconds per cause (``ns``), the ns
    reported since the owner last took them (``pending``: what the next ``Run`` demand is made of),
    and may *tee* everything into a second meter (the work a control domain does on behalf of one
    guest is also charged to that guest's account).
    """

    def __init__(self, pricer: Pricer):
        super().__init__()
        self.pricer = pricer
        self.ns: dict[str, float] = {}
        self.pending = 0.0
        self.tee: "LiveMeter | None" = None

    def add(self, cause: str, price: str, n: float = 1) -> None:
        if n:
            v = n * self.pricer.ns(price)
            d = self.ns
            d[cause] = d.get(cause, 0.0) + v
            self.pending += v
            if self.tee is not None:
                t = self.tee.ns
                t[cause] = t.get(cause, 0.0) + v

    def add_ns(self, cause: str, v: float) -> None:
        if v:
            d = self.ns
            d[cause] = d.get(cause, 0.0) + v
            self.pending += v
            if self.tee is not None:
                t = self.tee.ns
                t[cause] = t.get(cause, 0.0) + v

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] += n
            if self.tee is not None:
                self.tee.counts[name] += n

    def merge(self, other: Meter, times: float = 1) -> None:
        p = self.pricer
        for (cause, price), n in other.work.items():
            self.add_ns(cause, n * times * p.ns(price))
        for k, v in other.counts.items():
            self.count(k, v * times)

    def take(self) -> int:
        """The whole ns reported since the last take (the sub-ns remainder carries over: the
        clock is integer ns)."""
        v = int(self.pending)
        self.pending -= v
        return v

    def take_upto(self, ns: int) -> int:
        """At most ``ns`` of the pending work (whole ns)."""
        v = min(int(self.pending), int(ns))
        self.pending -= v
        return v

    def price(self, profile: Profile | None = None) -> dict[str, float]:
        g = self.pricer.ghz
        return {c: v * g for c, v in self.ns.items()}

    def snapshot(self) -> tuple[dict, dict]:
        return dict(self.ns), dict(self.counts)
