"""What a run will cost before it starts: a wall-time estimate from a short, measured probe.

Design note
-----------
There is no table of guessed speeds: :func:`estimate` builds the scenario a second time and runs
that copy for a short *probe* -- simulated-time slices until the probe has spent
``PROBE_WALL_S`` of wall time or reached ``PROBE_SIM_NS`` of simulated time (or the run is
over). It measures two speeds of *this* scenario on *this* machine: wall seconds per simulated
second (the event rate of its workloads and modes together), and each finite domain's units of
work per simulated second. A ``duration_ms`` run then costs ``duration x wall/sim``; an ``ops``
run costs the simulated time its slowest domain needs for the units left, times the same ratio.
Building is measured too and counted once, with the first simulated slice (where the compiled
dispatcher's kernels are compiled on first use and caches warm): that slice is not extrapolated. The estimate is a linear extrapolation: a workload
whose phases differ after the probe (a long warm-up, a late timeline change) is misjudged by the
ratio of its phases' speeds; the probe reports what it measured so the figure can be checked.

:func:`check_limit` refuses a run whose estimate passes the limit (the CLI's ``--max-wall-s``,
``DEFAULT_LIMIT_S``; ``--no-limit`` lifts it) with one line naming the estimate and the limit. If
a domain of an ops run finishes no unit within ``PROBE_MAX_WALL_S`` there is no rate to
extrapolate: the estimate is unknown, said so, and not refused.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from pvsim.core.errors import ScenarioError
from pvsim.scenario import Scenario
from pvsim.sweep import scenario_of
from pvsim.system import build

PROBE_WALL_S = 0.3  # wall time a probe may spend simulating
PROBE_SIM_NS = 20_000_000  # and at most this much simulated time
PROBE_MAX_WALL_S = 3.0  # longer only while a domain of an ops run has not finished one unit
SLICE_NS = 250_000  # the probe's simulated-time steps
DEFAULT_LIMIT_S = 3600.0


@dataclass(frozen=True)
class Estimate:
    wall_s: float  # the whole run (build included)
    build_s: float
    probe_sim_ns: int  # simulated time the probe covered
    probe_wall_s: float
    sim_ns_needed: float  # simulated time the run covers
    finished_in_probe: bool
    known: bool = True  # False: a domain finished no unit within the probe (no rate to extrapolate)

    def describe(self) -> str:
        return f"{format_s(self.wall_s)} ({format_s(self.sim_ns_needed / 1e9)} simulated)"


def format_s(s: float) -> str:
    if not math.isfinite(s):
        return "forever"
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    if s < 2 * 86400:
        return f"{s / 3600:.3g} h"
    return f"{s / 86400:.3g} days"


def estimate(sc: Scenario) -> Estimate:
    """Measure a probe of ``sc`` and extrapolate the whole run's wall time."""
    t0 = time.perf_counter()
    system = build(sc)
    build_s = time.perf_counter() - t0
    system.start()
    finite = [d for d in system.domains if math.isfinite(d.budget)]
    duration_ns = int(sc.run.duration_ms * 1_000_000) if sc.run.duration_ms is not None else None
    end = duration_ns if duration_ns is not None else math.inf
    t = 0
    # the first slice compiles the dispatcher's kernels on first use (Numba, cached on disk after)
    # and warms caches: a one-time cost, counted once with the build, not extrapolated
    t_w = time.perf_counter()
    if end > 0:
        t = int(min(end, SLICE_NS))
        system.engine.run(until_ns=t)
    build_s += time.perf_counter() - t_w
    t_probe0 = t
    t1 = time.perf_counter()

    def idle_domains() -> bool:  # an ops run needs every finite domain's rate: one unit done
        for h in system.hosts:
            h.runner.sync()
        return duration_ns is None and any(d.os.units <= 0 for d in finite)

    while t < end:
        spent = time.perf_counter() - t1
        if duration_ns is None and system._all_done.triggered:
            break
        if (t >= PROBE_SIM_NS or spent >= PROBE_WALL_S) and (spent >= PROBE_MAX_WALL_S or not idle_domains()):
            break
        t = int(min(end, t + SLICE_NS))
        system.engine.run(until_ns=t)
    wall = time.perf_counter() - t1
    for h in system.hosts:
        h.runner.sync()
    t = max(1, system.engine.now_ns)
    done = duration_ns is not None and t >= duration_ns or (duration_ns is None and system._all_done.triggered)
    if done:
        need = float(t)
    elif duration_ns is not None:
        need = float(duration_ns)
    else:
        need = 0.0
        for d in finite:
            units = d.os.units
            left = max(0.0, d.budget - units)
            rate = units / t  # units per simulated ns
            need = max(need, t + (left / rate if rate > 0 else math.inf))
    per_ns = wall / max(1, t - t_probe0) if t > t_probe0 else 0.0
    return Estimate(build_s + need * per_ns if math.isfinite(need) else math.inf, build_s, t, wall, need, done,
                    math.isfinite(need))


def check_limit(est: Estimate, limit_s: float | None, what: str = "run") -> None:
    """Refuse (one line) a run whose estimate passes ``limit_s`` (``None``: no limit)."""
    if limit_s is not None and est.known and est.wall_s > limit_s:
        raise ScenarioError("estimate", f"this {what} would take about {est.describe()}, past the limit of "
                                        f"{format_s(limit_s)}; give --no-limit to run it anyway "
                                        f"(or --max-wall-s SECONDS)")


#: A sweep is estimated from at most this many of its runs (the first, the last, and between),
#: scaled to the number of runs: every probe costs ~0.3 s before the sweep starts.
SWEEP_SAMPLES = 3


def estimate_sweep(runs) -> Estimate:
    """The estimate of a sweep's runs still to compute (``pvsim.sweep.Run`` objects): the mean of up
    to SWEEP_SAMPLES probed runs (first, last, middle), times the number of runs."""
    runs = list(runs)
    if not runs:
        return Estimate(0.0, 0.0, 0, 0.0, 0, True, True)
    picks = sorted({0, len(runs) - 1, len(runs) // 2})[:SWEEP_SAMPLES]
    ests = [estimate(scenario_of(runs[i].data)) for i in picks]
    k = len(runs) / len(ests)
    return Estimate(k * sum(e.wall_s for e in ests), k * sum(e.build_s for e in ests),
                    int(k * sum(e.probe_sim_ns for e in ests)), k * sum(e.probe_wall_s for e in ests),
                    int(k * sum(e.sim_ns_needed for e in ests)), all(e.finished_in_probe for e in ests),
                    all(e.known for e in ests))


def estimate_many(scenarios, samples: int = SWEEP_SAMPLES) -> Estimate:
    """The estimate of a list of independent runs (``compare``, ``lmbench``, ``nanobench``): each
    distinct ``[run]`` length is probed on up to ``samples`` of its scenarios (first, middle, last),
    and their mean wall time is scaled to the number of scenarios of that length; the groups add up."""
    groups: dict[tuple, list] = {}
    for sc in scenarios:
        groups.setdefault((sc.run.ops, sc.run.duration_ms), []).append(sc)
    parts = []
    for scs in groups.values():
        picks = sorted({0, len(scs) - 1, len(scs) // 2})[:samples]
        ests = [estimate(scs[i]) for i in picks]
        k = len(scs) / len(ests)
        parts.append(Estimate(k * sum(e.wall_s for e in ests), k * sum(e.build_s for e in ests),
                              int(k * sum(e.probe_sim_ns for e in ests)), k * sum(e.probe_wall_s for e in ests),
                              int(k * sum(e.sim_ns_needed for e in ests)), all(e.finished_in_probe for e in ests),
                              all(e.known for e in ests)))
    if not parts:
        return Estimate(0.0, 0.0, 0, 0.0, 0, True, True)
    return Estimate(sum(e.wall_s for e in parts), sum(e.build_s for e in parts), sum(e.probe_sim_ns for e in parts),
                    sum(e.probe_wall_s for e in parts), sum(e.sim_ns_needed for e in parts),
                    all(e.finished_in_probe for e in parts), all(e.known for e in parts))


class ProgressLog:
    """Periodic progress lines (``LOG_EVERY_S``) with the time left, where no terminal shows a bar."""

    LOG_EVERY_S = 10.0

    def __init__(self, what: str, est: Estimate | None, terminal: bool, emit):
        self.what, self.est, self.terminal, self.emit = what, est, terminal, emit
        self.t0 = self.last = time.perf_counter()

    def __call__(self, frac: float) -> None:
        now = time.perf_counter()
        if self.terminal or now - self.last < self.LOG_EVERY_S or frac >= 1.0:
            return
        self.last = now
        spent = now - self.t0
        left = spent * (1 - frac) / frac if frac > 0 else (self.est.wall_s - spent if self.est else math.inf)
        self.emit(f"pvsim: {self.what}: {frac:.0%} simulated, {format_s(spent)} spent, about {format_s(left)} left")
