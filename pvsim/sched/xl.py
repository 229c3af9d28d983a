"""xl-style views of a simulated run: ``xl list``, ``xl vcpu-list``, ``xl sched-credit``,
``xl sched-credit2``, ``xl sched-rtds``.

Design note
-----------
Formats follow ``tools/xl/xl_info.c`` (``list_domains``: ``%-40s %5d %5lu %5d     %c%c%c%c%c%c
%8.1f``), ``tools/xl/xl_vcpu.c`` (``%-32s %5u %5u`` then ``%5u %3c%c-`` and ``%9.1f``, hard / soft
affinity as ``all``, ranges like ``0-3,6``, or ``none``) and ``tools/xl/xl_sched.c``
(``Cpupool Pool-0: tslice=30ms ratelimit=1000us migration-delay=0us`` then ``%-33s %4d %6d %4d``).
Times are the simulated CPU seconds of each domain / vCPU at the end of the run.

Simplifications: one cpupool (``Pool-0``); ``Mem`` is what the caller passes (0 if unknown).
"""

from __future__ import annotations

from hypercalls.ops import RUNSTATE_running

NS = 1e9


def cpulist(cpus, n_pcpus: int) -> str:
    """Format a pCPU set like xl: ``all``, ``none`` or ``0-3,6``."""
    if cpus is None or len(cpus) == n_pcpus:
        return "all"
    s = sorted(cpus)
    if not s:
        return "none"
    out, start, prev = [], s[0], s[0]
    for c in s[1:] + [None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if c is not None:
            start = prev = c
    return ",".join(out)


def _dom_state(units) -> str:
    running = any(u.is_running for u in units)
    done = all(u.done for u in units)
    blocked = not running and all(u.blocked or u.done for u in units) and not done
    paused = not running and any(u.pause_count for u in units) and not blocked
    return ("r" if running else "-") + ("b" if blocked else "-") + ("p" if paused else "-") + \
        ("s" if done else "-") + "-" + "-"


def xl_list(runner, mem_mib: dict | None = None, domids=None) -> str:
    mem_mib = mem_mib or {}
    now = runner.now
    lines = ["Name                                        ID   Mem VCPUs\tState\tTime(s)"]
    for domid in sorted(runner.domains):
        if domids and domid not in domids:
            continue
        d = runner.domains[domid]
        t = sum(runner.runstate_ns(u, now)[RUNSTATE_running] for u in d.units) / NS
        online = sum(1 for u in d.units if not u.done)
        lines.append(f"{d.name:<40s} {domid:5d} {int(mem_mib.get(domid, 0)):5d} {online:5d}     "
                     f"{_dom_state(d.units)}  {t:8.1f}")
    return "\n".join(lines)


def xl_vcpu_list(runner, domids=None) -> str:
    now = runner.now
    n = runner.n_pcpus
    lines = [f"{'Name':<32s} {'ID':>5s} {'VCPU':>5s} {'CPU':>5s} {'State':>5s} {'Time(s)':>9s} Affinity (Hard / Soft)"]
    for domid in sorted(runner.domains):
        if domids and domid not in domids:
            continue
        d = runner.domains[domid]
        for u in sorted(d.units, key=lambda x: x.vcpu_id):
            t = runner.runstate_ns(u, now)[RUNSTATE_running] / NS
            if u.done:
                cpu_state = f"{'-':>5s} {'--p':>5s}"
            else:
                st = ("r" if u.is_running else "-") + ("b" if u.blocked else "-") + "-"
                cpu_state = f"{u.cpu:5d} {st:>5s}"
            aff = f"{cpulist(u.hard, n)} / {cpulist(u.soft, n) if u.soft is not None else 'all'}"
            lines.append(f"{d.name:<32s} {domid:5d} {u.vcpu_id:5d} {cpu_state} {t:9.1f}  {aff}")
    return "\n".join(lines)


def _weight_cap_rows(runner, domids=None) -> list[str]:
    """The ``Name ID Weight Cap`` table xl sched-credit and sched-credit2 print (tools/xl/xl_sched.c)."""
    rows = [f"{'Name':<33s} {'ID':>4s} {'Weight':>6s} {'Cap':>4s}"]
    for domid in sorted(runner.domains):
        if domids and domid not in domids:
            continue
        d = runner.domains[domid]
        rows.append(f"{d.name:<33s} {domid:4d} {d.weight:6d} {d.cap:4d}")
    return rows


def xl_sched_credit(runner, domids=None) -> str:
    s = runner.sched
    g = s.global_info()
    lines = [f"Cpupool Pool-0: tslice={g['tslice_ms']}ms ratelimit={g['ratelimit_us']}us "
             f"migration-delay={g['migration_delay_us']}us",
             *_weight_cap_rows(runner, domids)]
    return "\n".join(lines)


def xl_sched_credit2(runner, domids=None) -> str:
    s = runner.sched
    lines = [f"Cpupool Pool-0: ratelimit={s.global_info()['ratelimit_us']}us",
             *_weight_cap_rows(runner, domids)]
    return "\n".join(lines)


def xl_sched_rtds(runner, domids=None) -> str:
    s = runner.sched
    lines = ["Cpupool Pool-0: sched=RTDS",
             f"{'Name':<33s} {'ID':>4s} {'VCPU':>4s} {'Period':>9s} {'Budget':>9s} {'Extratime':>10s} {'Misses':>7s}"]
    for domid in sorted(runner.domains):
        if domids and domid not in domids:
            continue
        d = runner.domains[domid]
        for u in sorted(d.units, key=lambda x: x.vcpu_id):
            if u.priv is None:
                continue
            i = s.unit_info(u)
            lines.append(f"{d.name:<33s} {domid:4d} {u.vcpu_id:4d} {i['period_us']:9d} {i['budget_us']:9d} "
                         f"{i['extratime']:10d} {i['deadline_misses']:7d}")
    return "\n".join(lines)


def share_table(runner) -> str:
    """A pvsim addition: per-domain CPU share, steal time and wake latency of the run."""
    import numpy as np

    st = runner.stats()
    el = max(1, st.elapsed_ns)
    lines = [f"{'Name':<24s} {'ID':>4s} {'CPU%':>7s} {'Steal%':>7s} {'Switches':>9s} {'Migr':>6s} "
             f"{'Wake p50 us':>12s} {'Wake p99 us':>12s}"]
    for domid in sorted(runner.domains):
        vs = [v for v in st.vcpus if v.domid == domid]
        lat = st.wake_latency_ns(domid)
        p50 = f"{np.percentile(lat, 50) / 1e3:12.1f}" if lat.size else f"{'-':>12s}"
        p99 = f"{np.percentile(lat, 99) / 1e3:12.1f}" if lat.size else f"{'-':>12s}"
        lines.append(f"{runner.domains[domid].name:<24s} {domid:4d} {100 * sum(v.cpu_ns for v in vs) / el:7.2f} "
                     f"{100 * sum(v.steal_ns for v in vs) / el / len(vs):7.2f} "
                     f"{sum(v.context_switches for v in vs):9d} {sum(v.migrations for v in vs):6d} {p50} {p99}")
    return "\n".join(lines)
