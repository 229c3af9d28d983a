"""Host cache topology, and where a guest's vCPUs land in it: pinned or floating, told the
topology or not (issue 12 item 8: a tuned and an untuned KVM-style guest).

Design note
-----------
A host's pCPUs are grouped into last-level-cache domains of ``sched.cores_per_llc_count`` pCPUs
(pCPUs ``k*c .. k*c+c-1`` share LLC ``k``, the order Linux and Xen number the cores of a package
in). :meth:`HostTopology.crosses_cache_domain` is the one question other models ask ("is a move
from pCPU a to pCPU b across cache domains?"): the cache-footprint refill model calls it for a
migration, this module for a wake-up.

Two things a tuning guide for KVM guests changes (pin every vCPU to its own pCPU with
``virsh vcpupin`` / xl ``cpus``; expose the host's sockets/cores/LLC to the guest with
``-smp sockets=,cores=`` and ``host-cache-info``) and what they do here:

* **floating vCPUs** (a vCPU's affinity is a set of pCPUs): the host scheduler places a woken vCPU
  on any pCPU of the set; pvsim takes the placement as uniform over the set (a host with other
  load: no cache-affine choice is guaranteed [assumption]). A vCPU that lands in another LLC than
  the one it last ran in refills its working set from there: probability
  ``1 - sum_k (n_k/|S|)^2`` (``n_k`` pCPUs of the set in LLC ``k``).
* **the guest's wake-up placement**: a guest that knows which of its vCPUs share an LLC wakes a
  task on an idle vCPU of the waker's LLC (Linux ``select_idle_sibling`` searches the waker's LLC
  domain); a guest with a flat topology (QEMU's default ``-smp N``: N sockets of one core, every
  vCPU its own LLC domain) has no such preference: the wakee's vCPU is any other vCPU. With 1:1
  pinning the topology the guest is told is the truth; with floating vCPUs it is stale, so it
  helps nothing: two vCPUs are on two random distinct pCPUs of the set.

A cross-LLC wake-up costs the reschedule IPI's extra delivery cost across domains
(``sched.cross_llc_ipi_cycles``) and the transfer of the ``lines`` cache lines the waker wrote
for the wakee (``sched.cross_llc_line_cycles`` each, the remote-cache minus local-LLC latency); a
cross-LLC migration refills ``ws_lines`` lines at the same per-line cost. Both are the expected
cost per wake-up (probability x cost), charged by the guest-kernel action ``llc_wakeup`` as the
causes ``sched.cross_llc_wakeup`` and ``sched.llc_migration_refill``.

Simplifications: one affinity set per domain (its ``cpus``), optionally 1:1 pinned in order
(``options.pin_vcpus``); uniform host placement of floating vCPUs; a topology-aware guest finds an
idle vCPU in the waker's LLC whenever it has another vCPU there; no SMT level, no NUMA memory
placement (remote DRAM), no L1/L2 refill on a migration within an LLC (the footprint model's).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class HostTopology:
    """``pcpus`` pCPUs in LLC domains of ``cores_per_llc`` consecutive pCPUs."""

    pcpus: int
    cores_per_llc: int

    @classmethod
    def from_profile(cls, profile, pcpus: int) -> "HostTopology":
        c = int(profile.value("sched.cores_per_llc_count")) if profile.has("sched.cores_per_llc_count") else pcpus
        return cls(int(pcpus), max(1, c))

    def llc_of(self, cpu: int) -> int:
        return int(cpu) // self.cores_per_llc

    def crosses_cache_domain(self, a: int, b: int) -> bool:
        """Whether a move (migration, wake-up, cache-line transfer) from pCPU ``a`` to ``b``
        leaves the LLC domain."""
        return self.llc_of(a) != self.llc_of(b)

    def _per_llc(self, cpus) -> list[int]:
        return list(Counter(self.llc_of(c) for c in cpus).values())


@dataclass(frozen=True)
class Placement:
    """Probabilities per guest wake-up: the waker's and wakee's vCPUs are in different LLCs
    (``wake``); the woken vCPU lands in another LLC than it last ran in (``migrate``)."""

    wake: float
    migrate: float


def placement(topo: HostTopology, cpus, vcpus: int, *, pinned: bool, guest_topology: str) -> Placement:
    """The placement probabilities of a ``vcpus``-vCPU guest whose affinity set is ``cpus``;
    ``pinned``: vCPU ``i`` on the ``i``-th pCPU of the set (1:1); ``guest_topology``: ``"host"``
    (the LLCs exposed) or ``"flat"``."""
    s = sorted(int(c) for c in cpus)
    if guest_topology not in ("host", "flat"):
        raise ValueError(f"guest topology must be 'host' or 'flat', got {guest_topology!r}")
    if vcpus < 2 or not s:
        wake = 0.0
    elif pinned:
        at = [s[i % len(s)] for i in range(vcpus)]
        llc = [topo.llc_of(c) for c in at]
        same = Counter(llc)
        if guest_topology == "host":  # a sibling in the waker's LLC exists: stay; else cross
            wake = sum(1 for k in llc if same[k] == 1) / vcpus
        else:  # any other vCPU, uniformly
            wake = sum((vcpus - same[k]) / (vcpus - 1) for k in llc) / vcpus
    else:
        n = len(s)
        wake = 0.0 if n < 2 else 1.0 - sum(m * (m - 1) for m in topo._per_llc(s)) / (n * (n - 1))
    if pinned:
        migrate = 0.0
    else:
        n = len(s)
        migrate = 1.0 - sum((m / n) ** 2 for m in topo._per_llc(s))
    return Placement(wake, migrate)
