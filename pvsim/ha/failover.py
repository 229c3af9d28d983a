"""Host and link failures in a scenario's timeline: heartbeat detection, fencing, and the restart of
the failed host's domains on the survivors from shared storage.

Design note
-----------
Models the HA manager of a Xen pool (XAPI's HA daemon ``xhad`` and its ``xha`` heartbeat; Pacemaker
with corosync for ``xl`` hosts; the survey's "when a server fails, its virtual servers switch over to
another host"): every host sends a heartbeat each ``heartbeat_ms``; a host whose beats have been
missing for ``missed`` intervals (after the link's latency) is declared dead and fenced. A link
failure that cuts hosts off from the largest connected group of hosts (the quorum side; ties go to
the group holding the first host) fences them too. The failed host's domains are restarted, in
declaration order, on a surviving host that reaches their disk's shared storage through a live link,
under an admission policy that keeps ``reserve_frac`` of each host's memory free (XAPI's
``ha-host-failures-to-tolerate`` plan, simplified to a fraction) and places each on the host with the
most memory left (ties by name). Each restart pays its guest's boot time; the work a domain did since
its last durable point (``durable_ms``: its application's commit interval; 0: nothing was durable
since it started) is lost. A domain on local disk, or with no host able to take it, stays down with
the reason.

One mechanism: :func:`run` (detection by :func:`detection_ms`, fencing, and each placement by
:func:`admit`, the admission policy) is what ``pvsim failover`` reports and what ``pvsim run`` follows
when a scenario has ``[[failures]]`` (:mod:`pvsim.ha.inrun`: there the failed host's vCPUs really
stop, and each restarted domain is a new incarnation whose vCPUs join the survivor's dispatcher and
whose workload continues there, so both agree on detection, placement and restart instant).

Simplifications: detection is by heartbeats only (no storage heartbeat); fencing is instantaneous at
detection; boots do not contend for the storage link; admission is by memory (with the reserve) and
by vCPU count (the host's pCPUs times ``vcpu_overcommit``), not by the CPU load the survivor already
carries (in a run, the restarted vCPUs then share the survivor's pCPUs through its scheduler).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from guest_kernels.modes import CONTROL_DOMAIN, MODES
from pvsim.core.errors import ScenarioError
from pvsim.core.schema import unknown
from pvsim.scenario import Scenario

HEARTBEAT_MS = 1000  # corosync token / xhad heartbeat period, ~1 s [assumption: corosync.conf token 1000 ms]
MISSED_BEATS = 3  # beats missed before the host is declared dead [assumption]
RESERVE_FRAC = 0.1  # memory each host keeps free for failover [assumption]
VCPU_OVERCOMMIT = 4  # vCPUs per pCPU a host admits [assumption]
DOM0_MIB = 512  # the Domain-0 the builder adds when a scenario does not list one (pvsim.system)
# boot time of a guest restarted from its disk: firmware or PV loader, kernel, init [assumption, rough]
BOOT_MS = {"pv": 6000, "pv32": 6000, "pvh": 5000, "pvhvm": 12000, "hvm": 15000, "hvm-shadow": 15000,
           "bt": 20000, "kvm-virtio": 8000}
# "remus": the domain(s) Remus protects, read by pvsim.ha.availability (the restart path here ignores it)
HA_KEYS = {"heartbeat_ms", "missed", "reserve_frac", "durable_ms", "vcpu_overcommit", "boot_ms", "remus"}


@dataclass(frozen=True)
class HaSettings:
    heartbeat_ms: float = HEARTBEAT_MS
    missed: int = MISSED_BEATS
    reserve_frac: float = RESERVE_FRAC
    durable_ms: float = 0.0
    vcpu_overcommit: float = VCPU_OVERCOMMIT
    boot_ms: tuple = ()  # (mode, ms) overrides


@dataclass(frozen=True)
class Failure:
    at_ms: float
    host: str | None = None
    link: tuple[str, str] | None = None
    where: str = "failures[0]"


def _num(v, f, lo, hi, integer=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi or (integer and v != int(v)):
        raise ScenarioError(f, f"must be {'an integer' if integer else 'a number'} {lo:g}..{hi:g}, got {v!r}")
    return int(v) if integer else float(v)


def parse_settings(raw, where: str = "ha", **override) -> HaSettings:
    t = dict(raw)
    for k in t:
        if k not in HA_KEYS:
            raise unknown(where, k, HA_KEYS)
    t.update({k: v for k, v in override.items() if v is not None})
    boot = t.get("boot_ms", {})
    if not isinstance(boot, dict):
        raise ScenarioError(f"{where}.boot_ms", "must be a table of mode = ms")
    for m, v in boot.items():
        if m not in MODES:
            raise unknown(f"{where}.boot_ms", m, MODES, what="mode")
        _num(v, f"{where}.boot_ms.{m}", 0, 3.6e6)
    return HaSettings(_num(t.get("heartbeat_ms", HEARTBEAT_MS), f"{where}.heartbeat_ms", 1, 3.6e6),
                      _num(t.get("missed", MISSED_BEATS), f"{where}.missed", 1, 1000, integer=True),
                      _num(t.get("reserve_frac", RESERVE_FRAC), f"{where}.reserve_frac", 0, 0.9),
                      _num(t.get("durable_ms", 0.0), f"{where}.durable_ms", 0, 3.6e9),
                      _num(t.get("vcpu_overcommit", VCPU_OVERCOMMIT), f"{where}.vcpu_overcommit", 0.1, 1000),
                      tuple(sorted((m, float(v)) for m, v in boot.items())))


def parse_failures(raw, sc: Scenario, where: str = "failures") -> list[Failure]:
    out = []
    hosts = [h.name for h in sc.hosts]
    for i, t in enumerate(raw):
        w = f"{where}[{i}]"
        if not isinstance(t, dict):
            raise ScenarioError(w, "must be a table")
        for k in t:
            if k not in ("at_ms", "host", "link"):
                raise unknown(w, k, ("at_ms", "host", "link"))
        at = _num(t.get("at_ms", 0.0), f"{w}.at_ms", 0, 3.6e9)
        if ("host" in t) == ("link" in t):
            raise ScenarioError(w, "give host = \"name\" (a crash) or link = [\"a\", \"b\"] (a cut), one of them")
        if "host" in t:
            if t["host"] not in hosts:
                raise unknown(where if where.startswith("--") else f"{w}.host", str(t["host"]), hosts, what="host")
            out.append(Failure(at, host=t["host"], where=w))
        else:
            ln = t["link"]
            if not (isinstance(ln, list) and len(ln) == 2 and all(isinstance(x, str) for x in ln)):
                raise ScenarioError(f"{w}.link", "must be two end names, e.g. [\"h1\", \"h2\"]")
            if sc.link_between(ln[0], ln[1]) is None:
                raise ScenarioError(f"{w}.link", f"no link joins {ln[0]!r} and {ln[1]!r}")
            out.append(Failure(at, link=(ln[0], ln[1]), where=w))
    return sorted(out, key=lambda f: (f.at_ms, f.where))


def detection_ms(at_ms: float, s: HaSettings, latency_ms: float = 0.0) -> float:
    """When the survivors declare a host dead that failed at ``at_ms``: its last beat went out at the
    last multiple of the interval not after the failure; the host is declared dead ``missed``
    intervals after that beat arrived."""
    last = math.floor(at_ms / s.heartbeat_ms) * s.heartbeat_ms
    return last + latency_ms + s.missed * s.heartbeat_ms


def _groups(hosts: list[str], links: set) -> list[list[str]]:
    seen, out = set(), []
    for h in hosts:
        if h in seen:
            continue
        comp, todo = [], [h]
        seen.add(h)
        while todo:
            x = todo.pop()
            comp.append(x)
            for a, b in links:
                y = b if a == x else a if b == x else None
                if y is not None and y in hosts and y not in seen:
                    seen.add(y)
                    todo.append(y)
        out.append(sorted(comp, key=hosts.index))
    return out


def admit(sc: Scenario, d, failed: str, survivors: list[str], links: set, used: dict, vcpus: dict,
          s: HaSettings) -> tuple[str | None, str | None]:
    """The admission policy (one, for ``pvsim failover`` and for failures inside ``pvsim run``): the
    surviving host that takes domain ``d`` of host ``failed``, or ``None`` and why it stays down. A
    candidate reaches ``d``'s storage through a live link and keeps ``reserve_frac`` of its memory and
    its vCPU overcommit limit after ``d``; the one with the most memory left wins (ties: declaration
    order). ``used`` and ``vcpus`` (per host) are what each host already holds."""
    if d.disk == "local":
        return None, f"its disk is on {failed}'s local storage, which failed with it"
    reach = [x for x in survivors if (x, d.disk) in links or (d.disk, x) in links]
    if not reach:
        return None, f"no surviving host has a live link to storage {d.disk!r}"
    room = {x: sc.host_named(x).memory_mib * (1 - s.reserve_frac) for x in reach}
    fits = [x for x in reach if used[x] + d.memory_mib <= room[x]
            and vcpus[x] + d.vcpus <= sc.host_named(x).pcpus * s.vcpu_overcommit]
    if not fits:
        best = max(reach, key=lambda x: room[x] - used[x])
        return None, (f"no host admits {d.memory_mib} MiB / {d.vcpus} vCPUs beyond the "
                      f"{s.reserve_frac:.0%} reserve (most room: {best}, {room[best] - used[best]:.0f} MiB)")
    order = [h.name for h in sc.hosts]
    return max(fits, key=lambda x: (sc.host_named(x).memory_mib - used[x], -order.index(x))), None


def run(sc: Scenario, failures: list[Failure], s: HaSettings) -> tuple[list[dict], list[dict]]:
    """(event rows, domain rows) of every failure, in time order."""
    hosts = [h.name for h in sc.hosts]
    alive = set(hosts)
    links = {tuple(ln.between) for ln in sc.links}
    host_links = {ln for ln in links if ln[0] in hosts and ln[1] in hosts}
    control = {c[0] for c in CONTROL_DOMAIN.values()}
    placed = {d.name: d.host for d in sc.domains if d.name not in control}
    doms = {d.name: d for d in sc.domains}
    used = {h: sum(d.memory_mib for d in sc.domains_on(h)) for h in hosts}
    vcpus = {h: sum(d.vcpus for d in sc.domains_on(h) if d.name not in control) for h in hosts}
    for h in hosts:
        if any(MODES[d.mode].control == "dom0" for d in sc.domains_on(h)) and not any(
                d.name in control for d in sc.domains_on(h)):
            used[h] += DOM0_MIB
    boot = {**BOOT_MS, **dict(s.boot_ms)}
    lat = {tuple(ln.between): ln.latency_us / 1e3 for ln in sc.links if set(ln.between) <= set(hosts)}
    events, rows = [], []
    for f in failures:
        if f.host is not None:
            if f.host not in alive:
                events.append({"at_ms": f.at_ms, "event": "host-crash", "target": f.host, "fenced": [],
                               "detect_ms": None, "note": "already down"})
                continue
            lost_hosts, why = [f.host], f"host {f.host} crashed"
        else:
            host_links.discard(f.link)
            host_links.discard((f.link[1], f.link[0]))
            links.discard(f.link)
            links.discard((f.link[1], f.link[0]))
            live = [h for h in hosts if h in alive]
            groups = _groups(live, host_links)
            keep = max(groups, key=lambda g: (len(g), -hosts.index(g[0]))) if groups else []
            lost_hosts = [h for h in live if h not in keep]
            why = f"host {{}} isolated by the cut of link {f.link[0]}-{f.link[1]}"
        ln_ms = max([v for k, v in lat.items() if set(k) & set(lost_hosts)] or [0.0])
        det = detection_ms(f.at_ms, s, ln_ms)
        events.append({"at_ms": f.at_ms, "event": "host-crash" if f.host else "link-cut",
                       "target": f.host or "-".join(f.link), "fenced": lost_hosts, "detect_at_ms": det,
                       "detect_ms": det - f.at_ms if lost_hosts else None})
        for h in lost_hosts:
            alive.discard(h)
        for h in lost_hosts:
            reason_h = why.format(h) if "{}" in why else why
            for name in [n for n, at in placed.items() if at == h]:
                d = doms[name]
                lost = f.at_ms if s.durable_ms <= 0 else f.at_ms - math.floor(f.at_ms / s.durable_ms) * s.durable_ms
                row = {"domain": name, "from": h, "failed_at_ms": f.at_ms, "cause": reason_h,
                       "detect_ms": det - f.at_ms, "lost_work_ms": lost, "memory_mib": d.memory_mib}
                target, reason = admit(sc, d, h, [x for x in hosts if x in alive], links, used, vcpus, s)
                if target is None:
                    row.update(status="down", to=None, boot_ms=None, restart_at_ms=None, downtime_ms=None,
                               reason=reason)
                    del placed[name]
                else:
                    b = boot.get(d.mode, 10000.0)
                    used[target] += d.memory_mib
                    vcpus[target] += d.vcpus
                    placed[name] = target
                    row.update(status="restarted", to=target, boot_ms=b, restart_at_ms=det + b,
                               downtime_ms=det + b - f.at_ms, reason="")
                    # the target crashes before the boot ends (before or after this detection: the
                    # manager does not know yet): the restart never serves; the domain is down until
                    # that crash, whose own rows place it again
                    doom = min((g.at_ms for g in failures if g.host == target and f.at_ms < g.at_ms < det + b),
                               default=None)
                    if doom is not None:
                        row.update(status="restart-failed", downtime_ms=doom - f.at_ms,
                                   reason=f"{target} crashed at {doom:g} ms, before the restart finished")
                rows.append(row)
    return events, rows


def availability(rows: list[dict], sc: Scenario, horizon_ms: float) -> float:
    """The fraction of domain-time in service over ``horizon_ms`` (a down domain counts to the end)."""
    n = len([d for d in sc.domains if d.name not in {c[0] for c in CONTROL_DOMAIN.values()}])
    down = sum(min(horizon_ms, r["downtime_ms"]) if r["status"] in ("restarted", "restart-failed")
               else max(0.0, horizon_ms - r["failed_at_ms"]) for r in rows)
    return 1.0 - down / (n * horizon_ms) if n else 1.0
