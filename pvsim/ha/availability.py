"""Availability over injected host failures: seeded Poisson host crashes over many host-years, each
priced by the failover model (detection, restart elsewhere or down until repair) or, for a
Remus-protected domain, by the Remus failover; availability per domain and for the pool, with a
95 % confidence interval over repetitions.

Design note
-----------
The figure operators quote for an HA pool (XAPI's HA with ``ha-host-failures-to-tolerate``,
Pacemaker's restart policy; Cully et al., NSDI'08, section 1, on the seconds of downtime Remus
trades for its checkpointing): the fraction of time each service was up over a long horizon under a
failure rate, in "nines". For each rate (failures per host-year) and repetition, each host's
crashes are a Poisson process over ``years`` (:func:`sample`, one ``numpy`` generator per (rate,
repetition), so a repetition's draws do not depend on the other rates or repetitions, in one
process or many). Every crash is priced by :func:`pvsim.ha.failover.run` (:class:`Outcomes`, one
call per *pattern*: the crashed host and the hosts still under repair at that instant, crashed
before it at time 0): a restarted domain is down from the crash for the detection (the heartbeat
phase of the crash: :func:`pvsim.ha.failover.detection_ms` is periodic in the crash instant) plus
its boot; a domain no survivor takes (local disk, no room within the reserve) stays down until its
declared host is repaired (``repair_h`` after that host's crash) and boots there; a domain protected by Remus whose backup is up
is down for the Remus failover (:func:`pvsim.ha.bind.failover`, the stream-silence detection and
the resume, measured at :data:`REMUS_PHASES` crash instants across a checkpoint interval, each crash
drawing one). A domain's down intervals are merged before they are summed; the horizon clips the
last one.

Simplifications: only host crashes (no link cuts); a host that crashes while under repair is
already down (the crash is absorbed); after its repair the pool returns to its declared placement
(the restarted domains are moved back live, at no downtime, and Remus re-protects its domain), so a
domain left down waits for its declared host, not for another host that comes back sooner; for a later crash
while the first host is still under repair, a Remus-failed-over domain sits where the restart
policy would have put it (the backup, in a two-host pool), and the backup's standby copy does not
count against the backup host's admission; lost work is not part of the availability figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from guest_kernels.modes import CONTROL_DOMAIN
from pvsim.core.errors import ScenarioError
from pvsim.core.schema import unknown
from pvsim.ha import bind
from pvsim.ha import failover as fo
from pvsim.ha.remus import DEFAULT_INTERVAL_MS, RemusOptions
from pvsim.scenario import Scenario

# a failed server is back this long after the crash: a 4-hour on-site hardware support contract
# (vendors' "4-hour mission-critical" response tiers), parts swapped, host rebooted [assumption]
REPAIR_H = 4.0
HOURS_PER_YEAR = 8766.0  # 365.25 days (Julian year)
REMUS_PHASES = 4  # crash instants, evenly spread over one checkpoint interval, at which the Remus failover is run
REMUS_DISK_MB_PER_S = 10.0  # the protected guest's disk writes, as pvsim remus --disk-mb-per-s [assumption]
BOOT_FALLBACK_MS = 10000.0  # boot of a mode without a BOOT_MS entry, as pvsim.ha.failover.run uses
MAX_EVENTS = 2_000_000  # expected host crashes of one sweep: a guard on its memory and time
MAX_RATE = 1000.0  # failures per host-year (about one every 9 hours)
CI_LEVEL = 0.95
REMUS_KEYS = ("domain", "to", "interval_ms")

# what a crash does to a domain (codes of Outcomes.kind)
UNAFFECTED, RESTARTED, DOWN, REMUS = 0, 1, 2, 3


@dataclass(frozen=True)
class Protection:
    """A domain checkpointed by Remus to the backup host ``to``."""
    domain: str
    to: str
    interval_ms: float = DEFAULT_INTERVAL_MS
    pps: float = RemusOptions.pps
    disk_mb_per_s: float = REMUS_DISK_MB_PER_S


# ------------------------------------------------------------------------------------------- input
def parse_rates(text: str, field: str = "--rate") -> tuple[float, ...]:
    """``0,0.5,1,2``: failures per host-year, each 0..MAX_RATE, no repeats."""
    out = []
    for tok in str(text).split(","):
        tok = tok.strip()
        if not tok:
            continue
        try:
            v = float(tok)
        except ValueError:
            raise ScenarioError(field, f"must be comma-separated numbers (failures per host-year), got {tok!r}") \
                from None
        if not 0 <= v <= MAX_RATE:
            raise ScenarioError(field, f"a rate is 0..{MAX_RATE:g} failures per host-year, got {tok}")
        if v in out:
            raise ScenarioError(field, f"rate {tok} is given twice")
        out.append(v)
    if not out:
        raise ScenarioError(field, "no rate given, e.g. 0.5,1,2")
    return tuple(out)


def parse_remus(spec, sc: Scenario, where: str = "--remus", interval_ms: float | None = None) -> Protection:
    """``DOM:HOST`` (the option) or ``{domain, to, interval_ms}`` (the scenario's ``[ha] remus``),
    checked as ``pvsim remus`` checks its domain, backup and interval."""
    if isinstance(spec, str):
        dom, sep, to = spec.partition(":")
        if not sep or not dom or not to:
            raise ScenarioError(where, f"give DOMAIN:BACKUP_HOST, e.g. db:h2, got {spec!r}")
        fields = {"domain": where, "to": where, "interval": "--remus-interval-ms"}
        p = Protection(dom, to, DEFAULT_INTERVAL_MS if interval_ms is None else float(interval_ms))
    elif isinstance(spec, dict):
        for k in spec:
            if k not in REMUS_KEYS:
                raise unknown(where, k, REMUS_KEYS)
        for k in ("domain", "to"):
            if not isinstance(spec.get(k), str):
                raise ScenarioError(f"{where}.{k}", "required, a name")
        iv = spec.get("interval_ms", DEFAULT_INTERVAL_MS)
        if isinstance(iv, bool) or not isinstance(iv, (int, float)):
            raise ScenarioError(f"{where}.interval_ms", f"must be a number, got {iv!r}")
        fields = {"domain": f"{where}.domain", "to": f"{where}.to", "interval": f"{where}.interval_ms"}
        p = Protection(spec["domain"], spec["to"], float(iv))
    else:
        raise ScenarioError(where, "must be a table { domain = \"db\", to = \"h2\" }")
    bind.build(sc, p.domain, p.to, p.interval_ms, p.pps, p.disk_mb_per_s, fields=fields)  # every check, no run
    return p


def protections(sc: Scenario, option: list[str] | None = None, interval_ms: float | None = None) -> list[Protection]:
    """The scenario's ``[ha] remus`` (a table or an array of tables) and the ``--remus`` options."""
    raw = dict(sc.ha).get("remus")
    out = []
    if raw is not None:
        items = raw if isinstance(raw, list) else [raw]
        for i, t in enumerate(items):
            where = "ha.remus" if not isinstance(raw, list) else f"ha.remus[{i}]"
            if not isinstance(t, dict):
                raise ScenarioError(where, "must be a table { domain = \"db\", to = \"h2\" } (or an array of them)")
            out.append(parse_remus(t, sc, where))
    if interval_ms is not None and not option:
        raise ScenarioError("--remus-interval-ms", "applies to --remus DOMAIN:HOST; give --remus too")
    for spec in option or []:
        out.append(parse_remus(spec, sc, "--remus", interval_ms))
    seen = set()
    for p in out:
        if p.domain in seen:
            raise ScenarioError("--remus", f"domain {p.domain!r} is protected twice")
        seen.add(p.domain)
    return out


def check_sweep(rates, years: float, reps: int, repair_h: float, seed: int, n_hosts: int) -> None:
    if isinstance(years, bool) or not 0 < years <= 1000:
        raise ScenarioError("--years", f"must be in (0, 1000], got {years:g}")
    if not 2 <= reps <= 100_000:
        raise ScenarioError("--reps", f"must be 2..100000 (a confidence interval needs two), got {reps}")
    if not 0 <= repair_h <= HOURS_PER_YEAR:
        raise ScenarioError("--repair-h", f"must be 0..{HOURS_PER_YEAR:g} hours, got {repair_h:g}")
    if not 0 <= seed <= 2 ** 63 - 1:
        raise ScenarioError("--seed", f"a seed is 0..2**63-1 (as in a scenario file), got {seed}")
    expected = sum(rates) * years * reps * n_hosts
    if expected > MAX_EVENTS:
        raise ScenarioError("--reps", f"{expected:.3g} host failures expected (rates x years x reps x "
                                      f"{n_hosts} hosts); at most {MAX_EVENTS:.0e}: fewer reps, years or rates")


# ------------------------------------------------------------------------------------------ model
def _rate_key(rate: float) -> int:
    """The rate's own bits: its stream does not depend on which other rates are swept."""
    return int(np.float64(rate).view(np.uint64))


def stream(seed: int, rate: float, rep: int) -> np.random.Generator:
    """The generator of one (rate, repetition)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_rate_key(rate), rep)))


def sample(rng: np.random.Generator, rate: float, n_hosts: int, horizon_ms: float):
    """One repetition's crashes: (times in ms, host index, Remus phase index), sorted by time."""
    ts, hs, ks = [], [], []
    for h in range(n_hosts):
        n = int(rng.poisson(rate * horizon_ms / (HOURS_PER_YEAR * 3.6e6)))
        ts.append(rng.uniform(0.0, horizon_ms, n))
        hs.append(np.full(n, h, np.int64))
        ks.append(rng.integers(0, REMUS_PHASES, n))
    t, h, k = np.concatenate(ts), np.concatenate(hs), np.concatenate(ks)
    order = np.lexsort((h, t))
    return t[order], h[order], k[order]


def remus_downtimes(sc: Scenario, p: Protection) -> np.ndarray:
    """The Remus failover's downtime (ms) at REMUS_PHASES crash instants over the third checkpoint
    interval of a protected run (the first ones hold the initial copy's aftermath)."""
    iv = p.interval_ms
    out = []
    for k in range(REMUS_PHASES):
        at = iv * (2 + (k + 0.5) / REMUS_PHASES)
        r = bind.failover(sc, p.domain, p.to, iv, p.pps, p.disk_mb_per_s, 4 * iv, at)
        out.append(r["downtime_ms"])
    return np.asarray(out, float)


class Outcomes:
    """What each crash pattern does to each domain, from :func:`pvsim.ha.failover.run`, built as the
    patterns occur: pattern = (crashed host, hosts still under repair)."""

    def __init__(self, sc: Scenario, s: fo.HaSettings, prot: list[Protection]):
        control = {c[0] for c in CONTROL_DOMAIN.values()}
        self.sc, self.s = sc, s
        self.hosts = [h.name for h in sc.hosts]
        self.domains = [d for d in sc.domains if d.name not in control]
        self.index = {d.name: i for i, d in enumerate(self.domains)}
        self.declared = [self.hosts.index(d.host) for d in self.domains]
        boot = {**fo.BOOT_MS, **dict(s.boot_ms)}
        self.boot_ms = np.array([float(boot.get(d.mode, BOOT_FALLBACK_MS)) for d in self.domains])
        self.prot = {p.domain: p for p in prot}
        self.keys: dict[tuple, int] = {}
        self.kind: list[np.ndarray] = []
        self.boot: list[np.ndarray] = []
        self.detect0: list[float] = []
        self.rows: list[list[dict]] = []
        for h in range(len(self.hosts)):
            self.pattern(h, ())

    def pattern(self, h: int, under_repair: tuple) -> int:
        key = (h, tuple(sorted(under_repair)))
        if key in self.keys:
            return self.keys[key]
        name = self.hosts[h]
        fails = [fo.Failure(0.0, host=self.hosts[g], where=f"under-repair[{g}]") for g in key[1]]
        fails.append(fo.Failure(0.0, host=name, where="crash"))
        ev, rows = fo.run(self.sc, fails, self.s)
        down = {self.hosts[g] for g in key[1]}
        kind = np.zeros(len(self.domains), np.int64)
        boot = np.zeros(len(self.domains))
        mine = [r for r in rows if r["from"] == name]
        for r in mine:
            i = self.index[r["domain"]]
            p = self.prot.get(r["domain"])
            d = self.domains[i]
            if p is not None and d.host == name and p.to not in down:
                kind[i] = REMUS
            elif r["status"] == "restarted":
                kind[i], boot[i] = RESTARTED, r["boot_ms"]
            else:
                kind[i], boot[i] = DOWN, self.boot_ms[i]
        self.keys[key] = len(self.kind)
        self.kind.append(kind)
        self.boot.append(boot)
        self.detect0.append(ev[-1]["detect_ms"] or 0.0)
        self.rows.append(mine)
        return self.keys[key]


def _patterns(out: Outcomes, t: np.ndarray, h: np.ndarray, repair_ms: float):
    """Per crash of one repetition (sorted by time): its pattern, whether it took effect (a host
    already down absorbs its crash), and for a crash while other hosts are under repair the time
    left of each one's repair ({crash index: {host index: ms}}). A crash with no other crash in the
    repair window before it is the single-host pattern; only chains of close crashes are walked one
    by one."""
    single = np.asarray([out.keys[(g, ())] for g in range(len(out.hosts))], np.int64)
    pat = single[h]
    eff = np.ones(len(t), bool)
    left: dict[int, dict[int, float]] = {}
    if len(t) < 2:
        return pat, eff, left
    close = np.diff(t) < repair_ms  # crash i+1 falls in the repair window of crash i
    chain = np.zeros(len(t), bool)
    chain[1:] |= close
    chain[:-1] |= close
    up_at = {}  # host -> end of its repair
    for i in np.flatnonzero(chain):
        if i == 0 or not close[i - 1]:
            up_at = {}
        ti, hi = float(t[i]), int(h[i])
        if up_at.get(hi, -1.0) > ti:
            eff[i] = False
            continue
        under = tuple(g for g, u in up_at.items() if u > ti)
        pat[i] = out.pattern(hi, under)
        if under:
            left[int(i)] = {g: up_at[g] - ti for g in under}
        up_at[hi] = ti + repair_ms
    return pat, eff, left


def _union(rep: np.ndarray, start: np.ndarray, end: np.ndarray, reps: int) -> np.ndarray:
    """Per repetition, the length of the union of the intervals [start, end) (sorted by (rep, start))."""
    if not len(rep):
        return np.zeros(reps)
    prev = pd.Series(end).groupby(rep).cummax().groupby(rep).shift(1).to_numpy(dtype=float, na_value=-np.inf)
    part = np.maximum(0.0, end - np.maximum(start, prev))
    return np.bincount(rep, weights=part, minlength=reps)


def downtimes(out: Outcomes, s: fo.HaSettings, pat: np.ndarray, t: np.ndarray, k: np.ndarray, repair_ms: float,
              remus_dt: dict, late: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(what each crash does to each domain, its downtime in ms), one row per crash: ``pat`` its
    pattern, ``t`` its instant (ms), ``k`` its Remus phase, ``late`` the repairs still under way
    (crash index -> {host index: ms left})."""
    nd = len(out.domains)
    kind = np.asarray(out.kind, np.int64).reshape(-1, nd)[pat]
    boot = np.asarray(out.boot, float).reshape(-1, nd)[pat]
    detect = np.asarray(out.detect0, float)[pat] - np.mod(t, s.heartbeat_ms)  # the beat phase of the crash
    dt = np.zeros(kind.shape)
    for i, d in enumerate(out.domains):
        dt[:, i] = np.where(kind[:, i] == RESTARTED, detect + boot[:, i], dt[:, i])
        dt[:, i] = np.where(kind[:, i] == DOWN, repair_ms + boot[:, i], dt[:, i])
        for e, left in (late or {}).items():  # displaced here from a host under repair: back with that host
            if kind[e, i] == DOWN and out.declared[i] in left:
                dt[e, i] = left[out.declared[i]] + boot[e, i]
        if d.name in remus_dt:
            dt[:, i] = np.where(kind[:, i] == REMUS, remus_dt[d.name][k], dt[:, i])
    return kind, dt


def simulate(sc: Scenario, s: fo.HaSettings, rate: float, reps: int, years: float, repair_h: float,
             seed: int, out: Outcomes, remus_dt: dict) -> list[dict]:
    """The rows of one rate: per repetition, per domain and for the pool."""
    horizon = years * HOURS_PER_YEAR * 3.6e6
    repair_ms = repair_h * 3.6e6
    nd = len(out.domains)
    R, T, P, K, E = [], [], [], [], []
    late = {}  # effective crash index -> {host index: ms left of its repair}
    n_eff = 0
    for r in range(reps):
        t, h, k = sample(stream(seed, rate, r), rate, len(out.hosts), horizon)
        pat, eff, left = _patterns(out, t, h, repair_ms)
        pos = np.cumsum(eff) - 1
        late.update({n_eff + int(pos[i]): v for i, v in left.items() if eff[i]})
        n_eff += int(eff.sum())
        R.append(np.full(int(eff.sum()), r, np.int64))
        T.append(t[eff])
        P.append(pat[eff])
        K.append(k[eff])
        E.append(int(eff.sum()))
    rep, t, pat, k = (np.concatenate(x) for x in (R, T, P, K))
    kind, dt = downtimes(out, s, pat, t, k, repair_ms, remus_dt, late)
    rows = []
    pool_down = np.zeros(reps)
    events = np.asarray(E)
    for i, d in enumerate(out.domains):
        dt_i = dt[:, i]
        hit = kind[:, i] != UNAFFECTED
        down = _union(rep[hit], t[hit], np.minimum(horizon, t[hit] + dt_i[hit]), reps)
        hits = np.bincount(rep[hit], minlength=reps)
        pool_down += down
        for r in range(reps):
            rows.append(_row("domain", rate, r, d.name, int(events[r]), int(hits[r]), float(down[r]), horizon,
                             "remus" if d.name in out.prot else "restart"))
    for r in range(reps):
        rows.append(_row("pool", rate, r, None, int(events[r]), None, float(pool_down[r]), nd * horizon, None))
    return rows


def nines(avail: float) -> float | None:
    """-log10(1 - availability): 3 for 99.9 %; None when nothing was ever down."""
    return None if avail >= 1.0 else -math.log10(1.0 - avail)


def _row(scope, rate, rep, domain, events, hits, down_ms, span_ms, protection) -> dict:
    a = 1.0 - down_ms / span_ms if span_ms else 1.0
    return {"kind": "rep", "scope": scope, "rate_per_host_year": rate, "rep": rep, "domain": domain,
            "protection": protection, "host_failures": events, "domain_failures": hits, "downtime_ms": down_ms,
            "availability": a, "nines": nines(a)}


def summarise(rows: list[dict], years: float) -> list[dict]:
    """Per rate and domain (and pool): the mean over repetitions with its CI_LEVEL Student-t interval."""
    out = []
    keys = list(dict.fromkeys((r["rate_per_host_year"], r["scope"], r["domain"]) for r in rows))
    for rate, scope, dom in keys:
        sel = [r for r in rows if r["rate_per_host_year"] == rate and r["scope"] == scope and r["domain"] == dom]
        a = np.array([r["availability"] for r in sel])
        dt = np.array([r["downtime_ms"] for r in sel])
        n = len(a)
        q = float(stats.t.ppf(0.5 + CI_LEVEL / 2, n - 1))
        half = q * float(a.std(ddof=1)) / math.sqrt(n)
        dhalf = q * float(dt.std(ddof=1)) / math.sqrt(n)
        m = float(a.mean())
        out.append({"kind": "mean", "scope": scope, "rate_per_host_year": rate, "domain": dom,
                    "protection": sel[0]["protection"], "reps": n, "years": years,
                    "host_failures_mean": float(np.mean([r["host_failures"] for r in sel])),
                    "downtime_ms_mean": float(dt.mean()), "downtime_ms_ci_low": float(dt.mean()) - dhalf,
                    "downtime_ms_ci_high": float(dt.mean()) + dhalf,
                    "downtime_min_per_year": float(dt.mean()) / 6e4 / years,
                    "availability_mean": m, "availability_ci_low": m - half,
                    "availability_ci_high": min(1.0, m + half), "ci_level": CI_LEVEL, "nines": nines(m)})
    return out


def sweep(sc: Scenario, rates, years: float = 10.0, reps: int = 100, repair_h: float = REPAIR_H,
          seed: int | None = None, remus: list[Protection] | None = None,
          settings: fo.HaSettings | None = None) -> tuple[list[dict], list[dict]]:
    """(per-repetition rows, per-rate mean rows) of an availability sweep over ``rates``."""
    seed = sc.seed if seed is None else seed
    rates = tuple(float(r) for r in rates)
    check_sweep(rates, years, reps, repair_h, seed, len(sc.hosts))
    s = settings or fo.parse_settings(sc.ha)
    prot = protections(sc) if remus is None else remus
    out = Outcomes(sc, s, prot)
    if not out.domains:
        raise ScenarioError("domains", "no guest domain whose availability to measure")
    rdt = {p.domain: remus_downtimes(sc, p) for p in prot}
    rows = [r for rate in rates for r in simulate(sc, s, rate, reps, years, repair_h, seed, out, rdt)]
    return rows, summarise(rows, years)
