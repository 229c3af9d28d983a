"""Scheduling metrics: runstate times, CPU shares over windows, allocation error, wake latency.

Design note
-----------
What ``xl vcpu-list``, ``vcpu_runstate_info`` (``xen/include/public/vcpu.h``) and xenalyze's
runstate summary (``tools/xentrace/xenalyze.c``) report, computed from the dispatcher: per-vCPU
time in ``running``/``runnable``/``blocked``/``offline`` (runnable + offline is the guest's steal
time), CPU time, context switches, migrations between pCPUs and wake-to-run latency samples.
:class:`ShareMonitor` samples cumulative CPU time per domain at fixed windows so shares can be
compared with what the weights and caps promise (:func:`expected_shares`, water-filling of the
pool's capacity by weight, each domain bounded by its vCPU count and its cap).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class VcpuStats:
    domid: int
    vcpu: int
    name: str
    running_ns: int
    runnable_ns: int
    blocked_ns: int
    offline_ns: int
    cpu_ns: int
    elapsed_ns: int
    context_switches: int
    migrations: int
    wake_latency_ns: np.ndarray
    cpu: int = 0
    state: str = "-"

    @property
    def runstate_ns(self) -> tuple[int, int, int, int]:
        return (self.running_ns, self.runnable_ns, self.blocked_ns, self.offline_ns)

    @property
    def steal_ns(self) -> int:
        """Linux's steal time under Xen: runnable + offline."""
        return self.runnable_ns + self.offline_ns


@dataclass
class RunStats:
    now_ns: int
    start_ns: int
    n_pcpus: int
    scheduler: str
    vcpus: list[VcpuStats]
    pcpu_idle_ns: list[int]
    pcpu_switches: list[int]
    domains: dict = field(default_factory=dict)  # domid -> (name, weight, cap, n_vcpus)

    @property
    def elapsed_ns(self) -> int:
        return self.now_ns - self.start_ns

    def vcpu(self, domid: int, vcpu: int = 0) -> VcpuStats:
        for v in self.vcpus:
            if v.domid == domid and v.vcpu == vcpu:
                return v
        raise KeyError((domid, vcpu))

    def domain_cpu_ns(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for v in self.vcpus:
            out[v.domid] = out.get(v.domid, 0) + v.cpu_ns
        return out

    def domain_share(self) -> dict[int, float]:
        """CPU time of each domain as a fraction of one pCPU over the run."""
        el = max(1, self.elapsed_ns)
        return {d: ns / el for d, ns in self.domain_cpu_ns().items()}

    def wake_latency_ns(self, domid: int | None = None) -> np.ndarray:
        arrs = [v.wake_latency_ns for v in self.vcpus if domid is None or v.domid == domid]
        return np.concatenate(arrs) if arrs else np.zeros(0, dtype=np.int64)

    @property
    def context_switches(self) -> int:
        return int(sum(self.pcpu_switches))

    @property
    def migrations(self) -> int:
        return int(sum(v.migrations for v in self.vcpus))

    def rows(self) -> list[dict]:
        """Tidy per-vCPU rows (for pandas / CSV)."""
        out = []
        for v in self.vcpus:
            lat = v.wake_latency_ns
            out.append({
                "scheduler": self.scheduler, "domid": v.domid, "vcpu": v.vcpu, "name": v.name,
                "running_ns": v.running_ns, "runnable_ns": v.runnable_ns, "blocked_ns": v.blocked_ns,
                "offline_ns": v.offline_ns, "cpu_ns": v.cpu_ns, "steal_ns": v.steal_ns,
                "context_switches": v.context_switches, "migrations": v.migrations,
                "wakeups": int(lat.size),
                "wake_p50_ns": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                "wake_p99_ns": float(np.percentile(lat, 99)) if lat.size else float("nan"),
                "wake_max_ns": int(lat.max()) if lat.size else 0,
            })
        return out


def expected_shares(weights: dict, caps: dict, vcpus: dict, capacity: float) -> dict:
    """Weight-proportional shares of ``capacity`` pCPUs for CPU-bound domains (water-filling).

    Each domain ``d`` gets at most ``min(vcpus[d], caps[d]/100 if caps[d] else inf)``; what a
    bounded domain cannot use goes to the others in proportion to their weights.
    """
    doms = list(weights)
    bound = {d: float(vcpus[d]) if not caps.get(d) else min(float(vcpus[d]), caps[d] / 100.0) for d in doms}
    share = {d: 0.0 for d in doms}
    free = list(doms)
    left = float(capacity)
    while free and left > 1e-12:
        wsum = sum(weights[d] for d in free)
        give = {d: left * weights[d] / wsum for d in free}
        capped = [d for d in free if give[d] >= bound[d] - share[d] - 1e-12]
        if not capped:
            for d in free:
                share[d] += give[d]
            break
        for d in capped:
            left -= bound[d] - share[d]
            share[d] = bound[d]
            free.remove(d)
    return share


class ShareMonitor:
    """Samples each domain's cumulative CPU time every ``window_ns`` from ``start_ns``."""

    def __init__(self, runner, window_ns: int, start_ns: int | None = None):
        self.runner = runner
        self.window_ns = int(window_ns)
        self.times: list[int] = []
        self.samples: list[dict[int, int]] = []
        t0 = runner.now if start_ns is None else int(start_ns)
        runner.timer(t0 - runner.now, self._sample)

    def _sample(self, now: int) -> None:
        r = self.runner
        acc: dict[int, int] = {d: 0 for d in r.domains}
        for u in r.units:
            acc[u.dom.domid] += r.cpu_ns(u, now)
        self.times.append(now)
        self.samples.append(acc)
        r.timer(self.window_ns, self._sample)

    def window_shares(self) -> tuple[list[int], np.ndarray]:
        """(domids, array[n_windows, n_domains]) of CPU time per window / window length."""
        doms = sorted(self.runner.domains)
        if len(self.samples) < 2:
            return doms, np.zeros((0, len(doms)))
        a = np.array([[s.get(d, 0) for d in doms] for s in self.samples], dtype=np.float64)
        dt = np.diff(np.array(self.times, dtype=np.float64))[:, None]
        return doms, np.diff(a, axis=0) / dt

    def allocation_error(self, expected: dict[int, float]) -> tuple[list[int], np.ndarray]:
        """Relative error (share - expected) / expected per window and domain."""
        doms, sh = self.window_shares()
        exp = np.array([expected[d] for d in doms])
        return doms, (sh - exp) / np.where(exp > 0, exp, 1.0)
