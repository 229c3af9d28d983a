"""Migrations of a scenario's domains: checked against its hosts and links, run on one engine (so
migrations sharing a link share its bandwidth), reported as tidy rows.

Design note
-----------
Binds :mod:`pvsim.migrate.save` to a :class:`~pvsim.scenario.Scenario`, as ``xl migrate`` binds
libxc's save engine to a domain (``tools/xl/xl_migrate.c``): the domain's RAM, vCPUs, mode (PV or
HVM records) and devices, its workload's writable working set, the link between the hosts (one
:class:`~pvsim.io.flows.Pipe` per direction: each migration one flow, max-min fair shares) and the
Domain-0 of each host (here an analytic FIFO server at the share of a pCPU it gives the stream: its
cap, if any; inside a run, :mod:`pvsim.migrate.inrun` puts Domain-0's vCPUs behind the same cost
function). Checks before time
0, each naming its field: the domain exists, the target host exists and differs from the source, a
link joins them, and the target has the memory (``xl migrate-receive`` fails to create the domain
otherwise). Simplification: the migration runs on its own engine beside the scenario, not inside a
:class:`~pvsim.system.System` run; the guest's vCPUs are not moved between the hosts' dispatchers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from guest_kernels.modes import CONTROL_DOMAIN, MODES
from pvsim.core.engine import Engine
from pvsim.core.errors import ScenarioError
from pvsim.core.profile import load_profile
from pvsim.core.schema import unknown
from pvsim.hypervisor.logdirty import model_for
from pvsim.io.devices import Pipe
from pvsim.migrate.dirty import PAGE_SIZE, GuestMemory, WriteModel
from pvsim.migrate.save import POLICIES, POSTCOPY_POLICIES, SPP_MAX_ITERATIONS, Migration, MigrationOptions
from pvsim.scenario import Scenario


@dataclass(frozen=True)
class Request:
    domain: str
    to: str
    at_ms: float = 0.0
    policy: str = "xen"
    adaptive: bool = False
    auto_converge: bool = False
    where: str = "--domain"
    live: bool = True  # False: xl's non-live path (suspend, then every page)
    precopy_rounds: int = 1  # hybrid: pre-copy rounds before the post-copy switch-over


def parse_requests(raw, where: str = "migrations") -> list[Request]:
    if not isinstance(raw, list):
        raise ScenarioError(where, "must be an array of tables ([[migrations]])")
    out = []
    keys = {"domain", "to", "at_ms", "policy", "adaptive", "auto_converge", "live", "precopy_rounds"}
    for i, t in enumerate(raw):
        w = f"{where}[{i}]"
        if not isinstance(t, dict):
            raise ScenarioError(w, "must be a table")
        for k in t:
            if k not in keys:
                raise unknown(w, k, keys)
        for k in ("domain", "to"):
            if not isinstance(t.get(k), str):
                raise ScenarioError(f"{w}.{k}", "required, a name")
        at = t.get("at_ms", 0.0)
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 <= at <= 3.6e6:
            raise ScenarioError(f"{w}.at_ms", f"must be a number 0..3600000, got {at!r}")
        if not isinstance(t.get("live", True), bool):
            raise ScenarioError(f"{w}.live", f"must be true or false, got {t['live']!r}")
        pr = t.get("precopy_rounds", 1)
        check_precopy_rounds(pr, f"{w}.precopy_rounds")
        out.append(Request(t["domain"], t["to"], float(at), t.get("policy", "xen"), bool(t.get("adaptive", False)),
                           bool(t.get("auto_converge", False)), w, bool(t.get("live", True)), int(pr)))
    return out


def check_precopy_rounds(value, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= SPP_MAX_ITERATIONS * 20:
        raise ScenarioError(where, f"must be a whole number 1..{SPP_MAX_ITERATIONS * 20}, got {value!r}")


def check(sc: Scenario, reqs: list[Request], cumulative: bool = True) -> None:
    """Each request against the scenario; the first problem raises naming its field. With
    ``cumulative`` the target must hold every domain sent to it at once; without, each alone (a run
    then allocates as pages arrive, and a migration that finds the target full aborts)."""
    hosts = [h.name for h in sc.hosts]
    used = {h: sum(d.memory_mib for d in sc.domains_on(h)) for h in hosts}
    for h in hosts:  # the control domain the builder adds
        if any(MODES[d.mode].control for d in sc.domains_on(h)):
            names = {CONTROL_DOMAIN[k][0] for k in CONTROL_DOMAIN}
            if not any(d.name in names for d in sc.domains_on(h)):
                used[h] += 512
    names = [d.name for d in sc.domains]
    for r in reqs:
        dom_f = r.where if r.where.startswith("--") else f"{r.where}.domain"
        to_f = "--to" if r.where.startswith("--") else f"{r.where}.to"
        pol_f = "--policy" if r.where.startswith("--") else f"{r.where}.policy"
        if r.domain not in names:
            raise unknown(dom_f, r.domain, names, what="domain")
        d = next(d for d in sc.domains if d.name == r.domain)
        if MODES[d.mode].vmm is None:  # bare metal, a container, UML's host processes
            raise ScenarioError(dom_f, f"domain {r.domain!r} runs in mode {d.mode!r}, which has no hypervisor to "
                                       "migrate it")
        if d.name in {c[0] for c in CONTROL_DOMAIN.values()}:
            raise ScenarioError(dom_f, f"{r.domain!r} is a control domain; it does not migrate")
        if r.to not in hosts:
            raise unknown(to_f, r.to, hosts, what="host")
        if r.to == d.host:
            raise ScenarioError(to_f, f"domain {r.domain!r} is already on host {r.to!r}")
        if sc.link_between(d.host, r.to) is None:
            raise ScenarioError(to_f, f"no link joins {d.host!r} and {r.to!r}; add [[links]] between them")
        if r.policy not in POLICIES:
            raise unknown(pol_f, r.policy, POLICIES, what="policy")
        free = sc.host_named(r.to).memory_mib - used[r.to]
        if d.memory_mib > free:
            raise ScenarioError(to_f, f"host {r.to!r} has {free} MiB free, domain {r.domain!r} needs "
                                      f"{d.memory_mib} MiB")
        if cumulative:
            used[r.to] += d.memory_mib


def dom0_share(sc: Scenario, host: str) -> float:
    """The share of a pCPU ``host``'s Domain-0 gives the stream on the analytic server: its cap, if any."""
    d0 = next((d for d in sc.domains_on(host) if d.name in {c[0] for c in CONTROL_DOMAIN.values()}), None)
    return min(1.0, d0.cap / 100) if d0 is not None and d0.cap else 1.0


def build_migration(eng, pipe, sc: Scenario, r: Request, index: int, drop_final: bool = False,
                    cpus=None) -> Migration:
    """The save engine of request ``r`` (the ``index``-th) of scenario ``sc`` on engine ``eng``, its stream
    on ``pipe`` (the source host's direction of the link); ``cpus``: the (sender, receiver) Domain-0 CPUs
    (default: analytic FIFO servers at :func:`dom0_share`)."""
    d = next(d for d in sc.domains if d.name == r.domain)
    wl = sc.catalogue.resolve(d.workload, d.params)
    seed = int(eng.rng(f"migrate/{index}/{d.name}").integers(0, 2**62))
    mem = GuestMemory(WriteModel.of(wl.spec.writable, d.memory_mib, seed_offset=seed), seed)
    opts = MigrationOptions(policy=r.policy, pv=MODES[d.mode].pv_guest, vcpus=d.vcpus,
        devices=int(wl.uses_disk) + int(wl.uses_network), adaptive=r.adaptive, auto_converge=r.auto_converge,
        dom0_share=(dom0_share(sc, d.host), dom0_share(sc, r.to)), live=r.live, drop_final=drop_final,
        precopy_rounds=r.precopy_rounds, logdirty=model_for(MODES[d.mode], load_profile(sc.host_named(d.host).profile)))
    return Migration(eng, pipe, mem, opts, cpus)


def summary_row(r: Request, d, m: Migration) -> dict:
    """The ``kind = "migration"`` row of a finished migration ``m`` of domain spec ``d``."""
    o = m.out
    ram = d.memory_mib * 2**20
    return {
        "domain": d.name, "from": d.host, "to": r.to, "policy": r.policy, "memory_mib": d.memory_mib,
        "start_ms": o.start_ns / 1e6, "total_ms": o.total_ns / 1e6, "downtime_ms": o.downtime_ns / 1e6,
        "downtime_breakdown_ms": {"suspend": o.suspend_ns / 1e6, "final_copy": o.final_copy_ns / 1e6,
                                  "state_records": o.records_ns / 1e6, "reconnect": o.reconnect_ns / 1e6,
                                  "resume": o.resume_ns / 1e6},
        "bytes": o.bytes, "bytes_over_ram": o.bytes / ram, "pages_sent": o.pages_sent,
        "iterations": o.iterations, "rounds": len(o.rounds), "stop_reason": o.stop_reason,
        "dom0_ms": {d.host: o.dom0_ns[0] / 1e6, r.to: o.dom0_ns[1] / 1e6},
        "guest_page_writes": o.guest_writes,
        "pages_lost": None if o.receiver is None else int((o.receiver != o.sender).sum()),
    } | logdirty_fields(o.rounds, m) | (postcopy_fields(o) if r.policy in POSTCOPY_POLICIES else {})


def logdirty_fields(rounds, m: Migration) -> dict:
    """The guest's log-dirty events over ``rounds`` and its vCPU time on them (pvsim.hypervisor.logdirty)."""
    return {"logdirty": m.o.logdirty.kind if m.o.logdirty is not None else None,
            "logdirty_faults": sum(x.logdirty_faults for x in rounds), "pml_exits": sum(x.pml_exits for x in rounds),
            "pml_flushes": sum(x.pml_flushes for x in rounds),
            "logdirty_guest_ms": sum(x.logdirty_guest_ns for x in rounds) / 1e6}


def postcopy_fields(o) -> dict:
    """A post-copy migration's degraded window: remote faults and the guest's stall on each."""
    st = np.asarray(o.stall_ns, dtype=np.float64)
    return {"remote_faults": o.remote_faults,
            "stall_mean_us": float(st.mean() / 1e3) if len(st) else 0.0,
            "stall_p99_us": float(np.percentile(st, 99) / 1e3) if len(st) else 0.0,
            "stall_total_ms": float(st.sum() / 1e6),
            "degraded_ms": o.degraded_ns / 1e6, "pushed_pages": o.pushed_pages}


def round_rows(r: Request, d, m: Migration) -> list[dict]:
    """The ``kind = "round"`` rows of migration ``m``: one per round, in order."""
    out = []
    for x in m.out.rounds:
        dur = max(1, x.duration_ns)
        out.append({"domain": d.name, "policy": r.policy, "round": x.index, "live": x.live,
                    "pages": x.pages, "skipped": x.skipped, "bytes": x.bytes,
                    "start_ms": x.start_ns / 1e6, "duration_ms": x.duration_ns / 1e6,
                    "mbit_per_s": x.bytes * 8 / dur * 1e3, "dirty_after": x.dirty_after,
                    "dirty_mb_per_s": x.dirty_after * PAGE_SIZE / dur * 1e3,
                    "logdirty_faults": x.logdirty_faults, "pml_exits": x.pml_exits, "pml_flushes": x.pml_flushes,
                    "logdirty_guest_ms": x.logdirty_guest_ns / 1e6})
    return out


def run(sc: Scenario, reqs: list[Request], drop_final: bool = False) -> tuple[list[dict], list[dict]]:
    """Run every migration on an engine of its own (no guest runs); (summary rows, per-round rows)."""
    check(sc, reqs)
    eng = Engine(seed=sc.seed)
    pipes: dict = {}
    migs = []
    for i, r in enumerate(reqs):
        d = next(d for d in sc.domains if d.name == r.domain)
        link = sc.link_between(d.host, r.to)
        key = (d.host, r.to)
        if key not in pipes:
            pipes[key] = Pipe(eng, link.rate_mbps, link.latency_us)
        m = build_migration(eng, pipes[key], sc, r, i, drop_final)
        migs.append((r, d, m))

        def later(r=r, m=m):
            yield eng.timeout_ns(int(round(r.at_ms * 1e6)))
            yield from m.process()

        eng.process(later())
    eng.run()
    rows, rounds = [], []
    for r, d, m in migs:
        rows.append(summary_row(r, d, m))
        rounds.extend(round_rows(r, d, m))
    return rows, rounds
