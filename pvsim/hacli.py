"""The ``pvsim remus``, ``pvsim failover``, ``pvsim availability`` and ``pvsim convert`` commands
(registered by :mod:`pvsim.cli`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from pvsim import compare as cmp
from pvsim import plots
from pvsim.convert import model as cv
from pvsim.core.errors import ScenarioError
from pvsim.core.schema import unknown
from pvsim.core.version import __version__
from pvsim.ha import availability as av
from pvsim.ha import bind
from pvsim.ha import failover as fo
from pvsim.ha.remus import COLO_DIVERGENCE
from pvsim.results import Outputs, Results, check_output_path
from pvsim.scenario import Scenario
from pvsim.workloads import DEFAULT

out = Console(width=None if sys.stdout.isatty() else 160)


def _write(rows, meta, json_out, csv_out, parquet_out=None, plot_fns=()):
    res = Results(rows, {"pvsim_version": __version__, **meta})
    with Outputs() as outs:
        if json_out:
            res.to_json(json_out, outs)
        if csv_out:
            res.to_csv(csv_out, outs)
        if parquet_out:
            res.to_parquet(parquet_out, outs)
        for fn, path in plot_fns:
            fn(outs.path_for(path))


def _table(title, rows, cols):
    t = Table(title=title)
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*[f"{r.get(c):.3g}" if isinstance(r.get(c), float) else str(r.get(c)) for c in cols])
    out.print(t)


def _outs(json_out, csv_out, **more):
    for opt, p in (("--json", json_out), ("--csv", csv_out), *((f"--{k}", v) for k, v in more.items())):
        if p is not None:
            check_output_path(p, opt)


def remus(scenario: Path = typer.Argument(..., help="scenario TOML with the primary's and the backup's hosts"),
          domain: str = typer.Option(..., "--domain", "-d", help="the protected domain"),
          to: str = typer.Option(..., "--to", help="the backup host"),
          interval_ms: float = typer.Option(200.0, "--interval-ms", "-i", help="checkpoint interval (xl remus -i)"),
          colo: bool = typer.Option(False, "--colo", "-c", help="COLO (xl remus -c): lockstep, checkpoint on "
                                    "divergence; rows beside Remus's"),
          divergence: float = typer.Option(COLO_DIVERGENCE, "--divergence", help="COLO: per-packet chance the "
                                           "secondary's output differs [assumption]"),
          pps: float = typer.Option(20000.0, "--pps", help="the guest's outbound packets per second"),
          disk_mb_per_s: float = typer.Option(10.0, "--disk-mb-per-s", help="the guest's disk writes"),
          duration_ms: float = typer.Option(2000.0, "--duration-ms", help="protected run after the initial copy"),
          fail_at_ms: Optional[float] = typer.Option(None, "--fail-at-ms", help="crash the primary then"),
          curve: bool = typer.Option(False, "--curve", help="overhead for intervals 25, 50, 100, 200, 500 ms"),
          json_out: Optional[Path] = typer.Option(None, "--json"), csv_out: Optional[Path] = typer.Option(None, "--csv")):
    """Remus checkpointing of a domain to a backup host (xl remus): client-visible added latency and
    throughput loss, or a failover at --fail-at-ms with what the clients saw; --colo for COLO."""
    run_remus(scenario, domain, to, interval_ms, colo, divergence, pps, disk_mb_per_s, duration_ms, fail_at_ms,
              curve, json_out, csv_out)


def run_remus(scenario: Path, domain: str, to: str, interval_ms: float, colo: bool, divergence: float, pps: float,
              disk_mb_per_s: float, duration_ms: float, fail_at_ms: Optional[float], curve: bool, json_out, csv_out,
              fields: Optional[dict] = None, title: str = "pvsim remus"):
    """The one Remus / COLO command, behind ``pvsim remus`` and ``pvsim xl remus`` (``fields``: the
    option names its errors carry)."""
    _outs(json_out, csv_out)
    sc = Scenario.from_toml(scenario)
    if not 1 <= duration_ms <= 3.6e6:
        raise ScenarioError("--duration-ms", f"must be 1..3600000, got {duration_ms:g}")
    if fail_at_ms is not None:
        rows = [bind.failover(sc, domain, to, interval_ms, pps, disk_mb_per_s, duration_ms, fail_at_ms,
                              colo=colo, divergence=divergence, fields=fields)]
        cols = ["domain", "backup", "checkpoint", "detect_ms", "downtime_ms", "lost_work_ms", "memory_equal",
                "disk_equal", "packets_missing", "packets_repeated", "retransmitted"]
    else:
        ivs = (25, 50, 100, 200, 500) if curve else (interval_ms,)
        rows = bind.curve(sc, domain, to, ivs, pps, disk_mb_per_s, duration_ms, colo=colo, divergence=divergence,
                          fields=fields)
        cols = ["interval_ms", "checkpoints", "pause_ms_mean", "mib_per_checkpoint", "added_latency_ms_mean",
                "added_latency_ms_p99", "throughput_loss"]
    if colo:
        cols = ["mode", *cols] + (["divergence_per_packet", "checkpoints_per_s"] if fail_at_ms is None else [])
    _write([{"kind": "remus", **r} for r in rows], {"scenario": sc.name, "seed": sc.seed}, json_out, csv_out)
    _table(f"{title} {sc.name} {domain} -> {to}", rows, cols)


def failover(scenario: Path = typer.Argument(..., help="scenario TOML with \\[\\[failures]] (and \\[ha])"),
             fail: Optional[str] = typer.Option(None, "--fail", help="crash this host (besides \\[\\[failures]])"),
             at_ms: float = typer.Option(0.0, "--at-ms", help="when --fail happens"),
             heartbeat_ms: Optional[float] = typer.Option(None, "--heartbeat-ms"),
             missed: Optional[int] = typer.Option(None, "--missed", help="beats missed before declared dead"),
             reserve: Optional[float] = typer.Option(None, "--reserve", help="memory fraction held in reserve"),
             horizon_ms: float = typer.Option(3.6e6, "--horizon-ms", help="window of the availability figure"),
             json_out: Optional[Path] = typer.Option(None, "--json"), csv_out: Optional[Path] = typer.Option(None, "--csv")):
    """Host crashes and link cuts: detection, restart of each domain elsewhere or why it stays down."""
    _outs(json_out, csv_out)
    sc = Scenario.from_toml(scenario)
    s = fo.parse_settings(sc.ha, heartbeat_ms=heartbeat_ms, missed=missed, reserve_frac=reserve)
    raw = list(sc.failures)
    fails = fo.parse_failures(raw, sc)
    if fail is not None:
        fails += fo.parse_failures([{"at_ms": at_ms, "host": fail}], sc, where="--fail")
        fails.sort(key=lambda f: f.at_ms)
    if not fails:
        raise ScenarioError("--fail", "nothing fails: give --fail HOST or [[failures]] in the scenario")
    events, rows = fo.run(sc, fails, s)
    av = fo.availability(rows, sc, horizon_ms)
    _write([{"kind": "failure", **e} for e in events] + [{"kind": "domain", **r} for r in rows],
           {"scenario": sc.name, "availability": av}, json_out, csv_out)
    _table("failures", events, ["at_ms", "event", "target", "fenced", "detect_ms"])
    _table("domains", rows, ["domain", "from", "status", "to", "detect_ms", "boot_ms", "downtime_ms",
                             "lost_work_ms", "reason"])
    out.print(f"availability over {horizon_ms:g} ms: {av:.6f}")


def availability(scenario: Path = typer.Argument(..., help="scenario TOML with several hosts (and \\[ha])"),
                 rate: str = typer.Option("0.5,1,2,4", "--rate", help="comma-separated host failure rates, "
                                          "failures per host-year"),
                 years: float = typer.Option(10.0, "--years", help="horizon of each repetition, years"),
                 reps: int = typer.Option(100, "--reps", help="repetitions per rate (the CI is over them)"),
                 seed: Optional[int] = typer.Option(None, "--seed", help="override the scenario's seed"),
                 repair_h: float = typer.Option(av.REPAIR_H, "--repair-h", help="hours until a crashed host "
                                                "is back [assumption]"),
                 remus: list[str] = typer.Option([], "--remus", help="DOMAIN:BACKUP_HOST protected by Remus "
                                                 "(repeatable; besides [ha] remus)"),
                 remus_interval_ms: Optional[float] = typer.Option(None, "--remus-interval-ms",
                                                                   help="checkpoint interval of --remus"),
                 json_out: Optional[Path] = typer.Option(None, "--json"),
                 csv_out: Optional[Path] = typer.Option(None, "--csv"),
                 parquet_out: Optional[Path] = typer.Option(None, "--parquet"),
                 plot: Optional[Path] = typer.Option(None, "--plot", help="availability against failure rate (PNG)"),
                 quiet: bool = typer.Option(False, "--quiet", "-q", help="no table on stdout")):
    """Availability over injected host crashes: seeded Poisson failures per host-year, each priced by the
    failover model (or Remus's failover), per domain and for the pool, mean and 95 % CI over --reps."""
    _outs(json_out, csv_out, parquet=parquet_out, plot=plot)
    sc = Scenario.from_toml(scenario)
    rates = av.parse_rates(rate)
    seed = sc.seed if seed is None else seed
    av.check_sweep(rates, years, reps, repair_h, seed, len(sc.hosts))
    fo.parse_failures(list(sc.failures), sc)  # the sweep draws its own crashes, but a bad entry is refused
    s = fo.parse_settings(sc.ha)
    prot = av.protections(sc, remus, remus_interval_ms)
    rows, means = av.sweep(sc, rates, years, reps, repair_h, seed, prot, s)
    meta = {"scenario": sc.name, "seed": seed, "years": years, "reps": reps, "repair_h": repair_h,
            "remus": [f"{p.domain}:{p.to}@{p.interval_ms:g}ms" for p in prot]}
    fns = [(lambda path: plots.availability(means, path, title=f"{sc.name}: availability, {reps} x {years:g} "
                                           f"years per rate"), plot)] if plot else []
    _write(means + rows, meta, json_out, csv_out, parquet_out, fns)
    if not quiet:
        shown = [dict(m, domain=m["domain"] or "(pool)", availability_mean=f"{m['availability_mean']:.6f}",
                      ci=f"{m['availability_ci_low']:.6f}..{m['availability_ci_high']:.6f}",
                      nines="-" if m["nines"] is None else f"{m['nines']:.2f}", protection=m["protection"] or "-")
                 for m in means]
        _table(f"pvsim availability {sc.name} (seed {seed}, {reps} reps x {years:g} years, repair {repair_h:g} h)",
               shown, ["rate_per_host_year", "domain", "protection", "host_failures_mean", "availability_mean", "ci",
                       "nines", "downtime_min_per_year"])


def convert(kind: str = typer.Option(..., "--kind", help="p2v, v2v or v2p"),
            hot: bool = typer.Option(False, "--hot", help="p2v: copy while the source runs, then sync"),
            size_gib: float = typer.Option(20.0, "--size-gib"), used_frac: float = typer.Option(0.4, "--used-frac"),
            all_blocks: bool = typer.Option(False, "--all-blocks", help="copy every block, not only the used"),
            disk_mb_per_s: float = typer.Option(500.0, "--disk-mb-per-s"),
            link_mbps: float = typer.Option(1000.0, "--link-mbps"),
            write_mb_per_s: float = typer.Option(20.0, "--write-mb-per-s", help="hot p2v: the source's writes"),
            mode: str = typer.Option("pv", "--mode", help="v2v: the guest's mode"),
            to_mode: str = typer.Option("kvm-virtio", "--to-mode", help="v2v: the mode on the target"),
            to_vmm: str = typer.Option("kvm", "--to-vmm", help="v2v: xen, kvm or vmware"),
            swap_kernel: bool = typer.Option(False, "--swap-kernel", help="v2v: replace a XenLinux pv32 kernel"),
            image_hw: str = typer.Option("generic", "--image-hw", help="v2p: the image's hardware profile"),
            target_hw: str = typer.Option("generic", "--target-hw", help="v2p: the target's hardware profile"),
            inject_drivers: bool = typer.Option(False, "--inject-drivers", help="v2p: the target's drivers"),
            workload: Optional[str] = typer.Option(None, "--workload", "-w", help="p2v: also the workload's "
                                                   "performance native, under emulation (hvm) and with PV drivers (pvhvm)"),
            profile: str = typer.Option("modern", "--profile", "-p", help="p2v --workload: the host's profile"),
            ops: Optional[int] = typer.Option(None, "--ops", help="p2v --workload: units of work per run "
                                                "(default: the workload's measurement, as pvsim compare)"),
            seed: int = typer.Option(0, "--seed"),
            json_out: Optional[Path] = typer.Option(None, "--json"), csv_out: Optional[Path] = typer.Option(None, "--csv")):
    """P2V (cold or hot), V2V across VMM kinds, V2P by cloning: time, downtime and data copied; with
    --workload, P2V's performance rows (physical host, emulated devices, PV drivers)."""
    _outs(json_out, csv_out)
    if workload is not None and kind != "p2v":
        raise ScenarioError("--workload", f"the performance rows are P2V's (--kind p2v), not {kind!r}")
    if workload is not None:
        check_p2v_performance(workload, profile)
    a = cv.DiskArgs(size_gib, used_frac, disk_mb_per_s, link_mbps, write_mb_per_s if hot else 0.0,
                    all_blocks=all_blocks, seed=seed)
    if kind == "p2v":
        row = cv.p2v(a, hot=hot)
    elif kind == "v2v":
        row = cv.v2v(a, mode, to_mode, to_vmm, swap_kernel)
    elif kind == "v2p":
        row = cv.v2p(a, image_hw, target_hw, inject_drivers)
    else:
        raise ScenarioError("--kind", f"must be p2v, v2v or v2p, got {kind!r}")
    perf = p2v_performance(workload, profile, seed, ops) if workload is not None else []
    _write([row] + perf, {"seed": seed, **({"profile": profile} if perf else {})}, json_out, csv_out)
    _table(f"pvsim convert --kind {kind}", [row], [k for k, v in row.items() if not isinstance(v, dict)])
    if perf:
        _table(f"{workload} after P2V (profile {profile})", perf,
               ["stage", "mode", "metric", "value", "relative_to_native"])


P2V_STAGES = (("physical", "native"), ("emulated devices", "hvm"), ("PV drivers", "pvhvm"))


def check_p2v_performance(workload: str, profile: str) -> None:
    if workload not in DEFAULT:
        raise unknown("--workload", workload, DEFAULT.names(), what="workload")
    cmp.check_modes([m for _, m in P2V_STAGES], profile, field="--profile")


def p2v_performance(workload: str, profile: str, seed: int, ops: Optional[int] = None) -> list[dict]:
    """The seed's point that P2V changes the hardware the OS sees: the workload on the physical host
    (native), as the converted guest first boots (hvm, emulated devices) and with PV drivers (pvhvm),
    through :func:`pvsim.compare.compare` (one run per mode, same seed and profile)."""
    check_p2v_performance(workload, profile)
    rows = cmp.compare([workload], [m for _, m in P2V_STAGES], profile, seed=seed, ops=ops)
    stage = {m: s for s, m in P2V_STAGES}
    return [{"kind": "p2v-performance", "stage": stage[r["mode"]], **r} for r in rows]
