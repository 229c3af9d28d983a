"""The ``pvsim`` command line (Typer). ``pvsim --help`` lists the commands; each has ``--help``.

Errors in the user's input (a bad scenario or value) print one line ``pvsim: error: <field>: <why>``
on stderr and exit with status 2, writing nothing.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer._click import exceptions as click_exc  # Typer's own Click (vendored since 0.26)
from typer.core import TyperGroup

from guest_kernels.modes import BASELINE, MODES
from hypercalls.table import HYPERCALLS
from pvsim import calibrate as cal
from pvsim import plots, validation
from pvsim import sweep as sw
from pvsim.compare import check_modes, plan, split_list
from pvsim.compare import compare as run_compare
from pvsim.core.errors import ScenarioError
from pvsim.core.profile import bundled_profiles, load_profile
from pvsim.core.version import __version__
from pvsim.estimate import DEFAULT_LIMIT_S, ProgressLog, check_limit, estimate, estimate_many, estimate_sweep
from pvsim.hacli import availability, convert, failover, remus
from pvsim.migrate import live as migration
from pvsim.results import Outputs, Results, check_output_path
from pvsim.scenario import Scenario
from pvsim.sched import SCHEDULER_NAMES
from pvsim.system import build
from pvsim.trace.cli import xenalyze
from pvsim.trace.session import Tracing
from pvsim.trace.xentrace import parse_mask
from pvsim.workloads import BUILTIN, NANO, PUBLISHED, TABLES
from pvsim.xl import app as xl_app
from pvsim.xlcfg import is_xlcfg, load_scenario


def _command_path(group, args) -> str:
    """``pvsim run`` / ``pvsim xl sched-credit``: the (sub)commands named in ``args``."""
    path, cmd = ["pvsim"], group
    for tok in args:
        sub = getattr(cmd, "commands", {}).get(tok) if not tok.startswith("-") else None
        if sub is None:
            break
        path.append(tok)
        cmd = sub
    return " ".join(path)


def usage_line(e: click_exc.UsageError, command: str = "pvsim") -> str:
    """Click's usage error as pvsim's one line ``<option>: <why> (<command> --help)``, no usage box."""
    msg = " ".join(e.format_message().split())
    where = None
    if isinstance(e, click_exc.NoSuchOption):
        where = e.option_name
        msg = "unknown option" + (f"; did you mean {', '.join(sorted(e.possibilities))}?" if e.possibilities else "")
    elif isinstance(e, click_exc.BadOptionUsage):
        where = e.option_name
        if "requires an argument" in msg:
            msg = "needs a value"
    elif isinstance(e, click_exc.BadParameter) and e.param is not None:
        p = e.param
        longs = [o for o in p.opts if o.startswith("--")] or list(p.opts)
        where = longs[0] if p.param_type_name == "option" and longs else (p.name or "argument").upper()
        if isinstance(e, click_exc.MissingParameter):
            msg = "missing (required)" if p.param_type_name == "option" else "missing argument"
        else:
            msg = "invalid value: " + " ".join(str(e.message).split())
    elif msg.startswith("No such command"):
        where = "command"
    head = f"{where}: " if where else ""
    return f"{head}{msg} (see '{command} --help')"


class PvsimGroup(TyperGroup):
    """The top-level group: every usage error of every command (an option without its value, an
    unknown option or command, a value of the wrong type, a missing argument) is one line
    ``pvsim: error: ...`` naming the option, exit status 2 -- not Click's usage box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(args=argv, prog_name=prog_name or "pvsim", complete_var=complete_var,
                              standalone_mode=False, **extra)
        except click_exc.NoArgsIsHelpError as e:  # `pvsim` or `pvsim xl` alone: its help, as before
            typer.echo(e.ctx.get_help())
            rv = 0
        except click_exc.UsageError as e:
            typer.echo(f"pvsim: error: {usage_line(e, _command_path(self, argv))}", err=True)
            rv = 2
        except typer.Abort:  # Typer's own (its vendored Click has no Abort)
            typer.echo("pvsim: interrupted; no output written", err=True)
            rv = 130
        except click_exc.ClickException as e:  # e.g. a file Click itself could not open
            typer.echo(f"pvsim: error: {' '.join(e.format_message().split())}", err=True)
            rv = e.exit_code
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(cls=PvsimGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="pvsim: simulate a Xen-style hypervisor; compare paravirtualization, binary translation, "
                       "VT-x (shadow/EPT), containers and bare metal, and see where the time goes.")
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

MODES_HELP = "comma-separated modes: " + ", ".join(MODES)


def user_errors(fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except ScenarioError as e:
            err.print(f"pvsim: error: {e}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:  # Ctrl-C: outputs are staged until the end, so nothing is half-written
            err.print("pvsim: interrupted; no output written", markup=False, highlight=False)
            raise typer.Exit(130) from None

    return wrapper


def _progress():
    return Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


NO_LIMIT_HELP = "run even if the estimated wall time passes --max-wall-s"
MAX_WALL_HELP = "refuse a run estimated (by a short measured probe) to take longer than this many seconds"


def _limit(no_limit: bool, max_wall_s: float) -> float | None:
    if not (max_wall_s > 0):
        raise ScenarioError("--max-wall-s", f"must be > 0, got {max_wall_s}")
    return None if no_limit else max_wall_s


def _meta(profile: str, seed: int) -> dict:
    return {"pvsim_version": __version__, "profile": load_profile(profile).name, "seed": seed}


def _check_profile(profile: str, seed: int | None = None) -> None:
    if seed is not None and not 0 <= seed <= 2 ** 63 - 1:
        raise ScenarioError("--seed", f"a seed is 0..2**63-1 (as in a scenario file), got {seed}")
    load_profile(profile, field_name="--profile")


def _check_outputs(**paths) -> None:
    for opt, p in paths.items():
        if p is not None:
            check_output_path(p, f"--{opt}")


def _run_rows(workloads, modes, profile, seed, ops, duration_ms, pcpus, options=None, limit: float | None = None,
              what: str = "comparison") -> list[dict]:
    if limit is not None:  # probe a few of the runs first, and refuse past the limit (as run and sweep)
        runs = plan(workloads, modes, profile, seed=seed, ops=ops, duration_ms=duration_ms, pcpus=pcpus,
                    options=options)
        check_limit(estimate_many([sc for _w, _m, sc in runs]), limit, what)
    n = len(workloads) * len(set(modes) | {"native"})
    with _progress() as prog:
        task = prog.add_task("simulating", total=n)

        def step(desc):
            prog.update(task, description=f"simulating {desc}", advance=1)

        return run_compare(workloads, modes, profile, seed=seed, ops=ops, duration_ms=duration_ms, pcpus=pcpus,
                           options=options, progress=step)


def _emit(rows, meta, json_out, csv_out, plot_fns=()) -> None:
    """Write every output of a command, all or nothing."""
    res = Results(rows, meta)
    with Outputs() as outs:
        if json_out:
            res.to_json(json_out, outs)
        if csv_out:
            res.to_csv(csv_out, outs)
        for fn, path in plot_fns:
            fn(outs.path_for(path))


# ---------------------------------------------------------------------------------------------- run
@app.command()
@user_errors
def run(scenario: Path = typer.Argument(..., help="scenario TOML file, or an xl.cfg domain file"),
        host: Optional[Path] = typer.Option(None, "--host", help="for an xl.cfg file: a TOML file with the host "
                                            "(\\[host], \\[scheduler], \\[run]); default a 4-pCPU modern host"),
        seed: Optional[int] = typer.Option(None, help="override the scenario's seed (0..2**63-1)"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="write results as JSON"),
        csv_out: Optional[Path] = typer.Option(None, "--csv", help="write results as CSV"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no table on stdout"),
        trace: Optional[Path] = typer.Option(None, "--trace", help="write a xentrace binary trace of the run"),
        perfetto: Optional[Path] = typer.Option(None, "--perfetto", help="write a Perfetto / chrome://tracing "
                                                "timeline (Chrome JSON trace format)"),
        trace_mask: Optional[str] = typer.Option(None, "--trace-mask", "-e", help="xentrace -e event mask for "
                                                 "--trace, e.g. 0x0002f000 (scheduler only); default all"),
        plot: Optional[Path] = typer.Option(None, "--plot", help="write each of the scenario's \\[\\[migrations]] "
                                            "as a per-round timeline with the guest's throughput (PNG; "
                                            "several migrations: FILE-1-DOMAIN.png, ...)"),
        no_limit: bool = typer.Option(False, "--no-limit", help=NO_LIMIT_HELP),
        max_wall_s: float = typer.Option(DEFAULT_LIMIT_S, "--max-wall-s", help=MAX_WALL_HELP)):
    """Run one scenario file and print a row per domain."""
    limit = _limit(no_limit, max_wall_s)
    _check_outputs(json=json_out, csv=csv_out, trace=trace, perfetto=perfetto, plot=plot)
    parse_mask(trace_mask)
    sc = load_scenario([scenario], host, warn=lambda t: err.print(f"pvsim: {t}", markup=False, highlight=False)) \
        if is_xlcfg(scenario) else Scenario.from_toml(scenario)
    if seed is not None:
        sc = sc.with_seed(seed)
    if plot and not sc.migrations:
        raise ScenarioError("--plot", "draws the scenario's [[migrations]], and it has none")
    est = estimate(sc) if limit is not None else None
    if est is not None:
        check_limit(est, limit)
    system = build(sc)
    log = ProgressLog(f"run {sc.name}", est, err.is_terminal, lambda line: err.print(line, markup=False))
    with Outputs() as outs:
        tracing = Tracing(system, outs, trace, perfetto, trace_mask)
        with _progress() as prog:
            task = prog.add_task(f"running {sc.name}", total=1.0)

            def step(f):
                prog.update(task, completed=f)
                log(f)
            res = system.run(progress=step)
        tracing.close()
        if json_out:
            res.to_json(json_out, outs)
        if csv_out:
            res.to_csv(csv_out, outs)
        if plot:
            _migration_plots(res.migration_rows, plot, outs)
    if not quiet:
        sched = ", ".join(f"{h.name}: {h.scheduler.name}" for h in sc.hosts)
        t = Table(title=f"{sc.name} (profile {res.meta['profile']}, seed {sc.seed}, {sched})")
        for c in ("host", "domain", "mode", "workload", "metric", "value", "cpu share", "elapsed ms", "top causes"):
            t.add_column(c)
        for r in res.rows:
            top = sorted(r["breakdown_ns"].items(), key=lambda kv: -kv[1])[:3]
            t.add_row(r["host"], r["domain"], r["mode"], r["workload"], r["metric"], f"{r['value']:.4g}",
                      f"{r['cpu_share']:.1%}", f"{r['elapsed_ns'] / 1e6:.1f}",
                      ", ".join(f"{k} {v / max(1, r['elapsed_ns']):.0%}" for k, v in top))
        out.print(t)
        if res.migration_rows:
            out.print(_migration_table(res.migration_rows))
        if res.failure_rows:
            out.print(_failure_table(res.failure_rows))


def _failure_table(rows) -> Table:
    """The failures of a run: per domain of a failed host, where it restarted (or why not), when, and
    what it lost."""
    t = Table(title="failures (pvsim.ha.inrun: detection and placement as pvsim failover)")
    for c in ("domain", "from", "to", "in run", "stopped ms", "detect ms", "boot ms", "resumed ms",
              "downtime ms", "lost work ms", "lost units", "reason"):
        t.add_column(c)

    def f(v):
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
    for r in rows:
        if r["kind"] == "restart":
            t.add_row(r["domain"], r["from"], f(r["to"]), r["in_run"], f(r["stopped_at_ms"]), f(r["detect_ms"]),
                      f(r["boot_ms"]), f(r["resumed_at_ms"]), f(r["service_downtime_ms"]), f(r["lost_work_ms"]),
                      f(r["lost_units"]), r["reason"])
    return t


def migration_plot_paths(plot: Path, migrations: list[dict]) -> list[Path]:
    """Where ``pvsim run --plot FILE`` draws each migration: FILE for one, ``FILE-<i>-<domain>`` (i from 1,
    in the order of ``[[migrations]]``) for several."""
    if len(migrations) == 1:
        return [Path(plot)]
    return [Path(plot).with_name(f"{Path(plot).stem}-{i}-{m['domain']}{Path(plot).suffix}")
            for i, m in enumerate(migrations, 1)]


def _migration_plots(rows: list[dict], plot: Path, outs: Outputs) -> None:
    """Each in-run migration's rounds as bars with the guest's throughput before / during / after as a
    line (:func:`plots.migration_timeline`). A run's rows list every ``kind = "migration"`` row, then
    the ``kind = "round"`` rows of each in the same order (its ``rounds`` of them)."""
    migs = [r for r in rows if r["kind"] == "migration"]
    rounds = [r for r in rows if r["kind"] == "round"]
    at = 0
    for m, path in zip(migs, migration_plot_paths(plot, migs)):
        own = rounds[at:at + m["rounds"]]
        at += m["rounds"]
        plots.migration_timeline(own, outs.path_for(path), m,
                                 title=f"{m['domain']}: {m['policy']} {m['from']} -> {m['to']} ({m['state']})")


def _migration_table(rows) -> Table:
    """The migrations of a run: times, downtime, bytes and the guest's throughput before / during / after."""
    t = Table(title="migrations (guest throughput in its metric)")
    for c in ("domain", "from", "to", "policy", "state", "total ms", "downtime ms", "MiB sent", "rounds",
              "before", "during", "after"):
        t.add_column(c)
    for r in rows:
        if r["kind"] != "migration":
            continue
        tp = r.get("throughput", {})
        f = [f"{tp[k]:.4g}" if tp.get(k) is not None else "-" for k in ("before", "during", "after")]
        t.add_row(r["domain"], r["from"], r["to"], r["policy"], r["state"],
                  f"{r['total_ms']:.1f}" if "total_ms" in r else "-",
                  f"{r['downtime_ms']:.2f}" if "downtime_ms" in r else "-",
                  f"{r['bytes'] / 2**20:.1f}" if "bytes" in r else "-", str(r["rounds"]), *f)
    return t


# ---------------------------------------------------------------------------------------------- migrate
@app.command()
@user_errors
def migrate(scenario: Path = typer.Argument(..., help="scenario TOML file with several hosts and links"),
            domain: Optional[str] = typer.Option(None, "--domain", "-d", help="the domain to migrate"),
            to: Optional[str] = typer.Option(None, "--to", help="the target host"),
            at_ms: float = typer.Option(0.0, "--at-ms", help="when the migration starts (simulated ms)"),
            policy: str = typer.Option("xen", "--policy", help="xen, xen-legacy, qemu, simgrid, or the "
                                       "post-copy extensions postcopy and hybrid"),
            precopy_rounds: int = typer.Option(1, "--precopy-rounds",
                                               help="hybrid: pre-copy rounds before switching to post-copy"),
            adaptive: bool = typer.Option(False, "--adaptive", help="xen-legacy: the NSDI'05 rate limit"),
            auto_converge: bool = typer.Option(False, "--auto-converge", help="qemu: auto-converge throttling"),
            seed: Optional[int] = typer.Option(None, help="override the scenario's seed"),
            json_out: Optional[Path] = typer.Option(None, "--json", help="write rows as JSON"),
            csv_out: Optional[Path] = typer.Option(None, "--csv", help="write rows as CSV"),
            plot: Optional[Path] = typer.Option(None, "--plot", help="write the first migration's per-round "
                                                "timeline (PNG)"),
            quiet: bool = typer.Option(False, "--quiet", "-q", help="no table on stdout")):
    """Live-migrate a domain to another host (xl migrate), plus the scenario's [[migrations]]; print
    total time, downtime and its parts, bytes, and every round."""
    _check_outputs(json=json_out, csv=csv_out, plot=plot)
    sc = Scenario.from_toml(scenario)
    if seed is not None:
        sc = sc.with_seed(seed)
    reqs = migration.parse_requests(list(sc.migrations))
    if (domain is None) != (to is None):
        raise ScenarioError("--to" if to is None else "--domain", "give --domain and --to together")
    if not 0 <= at_ms <= 3.6e6:
        raise ScenarioError("--at-ms", f"must be 0..3600000, got {at_ms:g}")
    if domain is not None:
        migration.check_precopy_rounds(precopy_rounds, "--precopy-rounds")
        reqs.append(migration.Request(domain, to, at_ms, policy, adaptive, auto_converge, precopy_rounds=precopy_rounds))
    if not reqs:
        raise ScenarioError("--domain", "nothing to migrate: give --domain and --to, or [[migrations]]")
    rows, rounds = migration.run(sc, reqs)
    res = Results([{"kind": "migration", **r} for r in rows] + [{"kind": "round", **r} for r in rounds],
                  {"pvsim_version": __version__, "seed": sc.seed, "scenario": sc.name, "profile": sc.host.profile})
    with Outputs() as outs:
        if json_out:
            res.to_json(json_out, outs)
        if csv_out:
            res.to_csv(csv_out, outs)
        if plot and rows:
            first = rows[0]["domain"]
            plots.migration_timeline([r for r in rounds if r["domain"] == first], outs.path_for(plot),
                                     title=f"{first}: {rows[0]['policy']} rounds")
    if not quiet:
        t = Table(title=f"pvsim migrate {sc.name} (seed {sc.seed})")
        for c in ("domain", "from", "to", "policy", "total ms", "downtime ms", "MiB sent", "x RAM", "rounds",
                  "stop"):
            t.add_column(c)
        for r in rows:
            t.add_row(r["domain"], r["from"], r["to"], r["policy"], f"{r['total_ms']:.1f}", f"{r['downtime_ms']:.2f}",
                      f"{r['bytes'] / 2**20:.1f}", f"{r['bytes_over_ram']:.2f}", str(r["rounds"]), r["stop_reason"])
        out.print(t)
        rt = Table(title="rounds")
        for c in ("domain", "round", "live", "pages", "skipped", "MiB", "ms", "Mbit/s", "dirty after",
                  "log-dirty faults / PML exits", "guest ms"):
            rt.add_column(c)
        for r in rounds:
            rt.add_row(r["domain"], str(r["round"]), str(r["live"]), str(r["pages"]), str(r["skipped"]),
                       f"{r['bytes'] / 2**20:.2f}", f"{r['duration_ms']:.2f}", f"{r['mbit_per_s']:.0f}",
                       str(r["dirty_after"]), f"{r['logdirty_faults']} / {r['pml_exits']}",
                       f"{r['logdirty_guest_ms']:.3f}")
        out.print(rt)
        pc = [r for r in rows if "remote_faults" in r]
        if pc:
            pt = Table(title="post-copy (degraded window on the target)")
            for c in ("domain", "remote faults", "stall mean us", "stall p99 us", "degraded ms", "pushed pages"):
                pt.add_column(c)
            for r in pc:
                pt.add_row(r["domain"], str(r["remote_faults"]), f"{r['stall_mean_us']:.1f}",
                           f"{r['stall_p99_us']:.1f}", f"{r['degraded_ms']:.2f}", str(r["pushed_pages"]))
            out.print(pt)


# ---------------------------------------------------------------------------------------------- compare
@app.command()
@user_errors
def compare(workload: str = typer.Option(..., "--workload", "-w", help="comma-separated workloads (pvsim list workloads)"),
            modes: str = typer.Option("native,pv,hvm", "--modes", "-m", help=MODES_HELP),
            profile: str = typer.Option("modern", "--profile", "-p", help="bundled profile name or a profile TOML"),
            seed: int = typer.Option(0, help="random seed"),
            ops: Optional[int] = typer.Option(None, help="units of work per run (default: 1 s for throughput "
                                                          "workloads, 10000 ops for latency ones)"),
            duration_ms: Optional[float] = typer.Option(None, help="simulated time per run instead of --ops"),
            pcpus: Optional[int] = typer.Option(None, help="pCPUs of the simulated host (default: the workload's "
                                                           "measurement, 1 or 2 for I/O)"),
            mmu: str = typer.Option("structural", help="structural (page tables as data) or counted"),
            json_out: Optional[Path] = typer.Option(None, "--json", help="write rows as JSON"),
            csv_out: Optional[Path] = typer.Option(None, "--csv", help="write rows as CSV"),
            plot: Optional[Path] = typer.Option(None, "--plot", help="write the relative-performance bar chart "
                                                                     "(and <name>-breakdown.png beside it)"),
            no_limit: bool = typer.Option(False, "--no-limit", help=NO_LIMIT_HELP),
            max_wall_s: float = typer.Option(DEFAULT_LIMIT_S, "--max-wall-s", help=MAX_WALL_HELP)):
    """Run workloads under several modes; print a table relative to native; plot SOSP'03 Figure 3 style."""
    limit = _limit(no_limit, max_wall_s)
    _check_profile(profile, seed)
    _check_outputs(json=json_out, csv=csv_out, plot=plot)
    ws = split_list(workload, "--workload", list(BUILTIN))
    ms = split_list(modes, "--modes", list(MODES))
    check_modes(ms, profile)
    rows = _run_rows(ws, ms, profile, seed, ops, duration_ms, pcpus, {"mmu": mmu} if mmu != "structural" else None,
                     limit=limit, what="comparison")
    t = Table(title=f"pvsim compare (profile {profile}; value ({plots.SCORE_LABEL}))")
    t.add_column("workload")
    t.add_column("metric")
    for m in ms:
        t.add_column(m, justify="right")
    for w in ws:
        cells = []
        metric = ""
        for m in ms:
            r = next(r for r in rows if r["workload"] == w and r["mode"] == m)
            metric = r["metric"]
            sc = plots.score(r)
            cells.append(f"{r['value']:.4g} ({sc:.3f})" if sc is not None else f"{r['value']:.4g}")
        t.add_row(w, metric, *cells)
    out.print(t)
    plot_fns = []
    if plot:
        p = Path(plot)
        plot_fns = [(lambda f: plots.relative_bars(rows, f, title=f"Relative performance, profile {profile}"), p),
                    (lambda f: plots.breakdown_bars(rows, f, title=f"Time per unit of work by cause, profile {profile}"),
                     p.with_name(p.stem + "-breakdown" + p.suffix))]
    _emit(rows, _meta(profile, seed), json_out, csv_out, plot_fns)


# ---------------------------------------------------------------------------------------------- lmbench
@app.command()
@user_errors
def lmbench(modes: str = typer.Option("native,pv32,bt", "--modes", "-m", help=MODES_HELP),
            profile: str = typer.Option("xeon-2003", "--profile", "-p", help="profile name or TOML"),
            seed: int = typer.Option(0),
            ops: int = typer.Option(2000, help="operations per measurement"),
            mmu: str = typer.Option("structural", help="structural (page tables as data) or counted"),
            json_out: Optional[Path] = typer.Option(None, "--json"),
            csv_out: Optional[Path] = typer.Option(None, "--csv"),
            plot: Optional[Path] = typer.Option(None, "--plot", help="bar chart of ratios to native"),
            no_limit: bool = typer.Option(False, "--no-limit", help=NO_LIMIT_HELP),
            max_wall_s: float = typer.Option(DEFAULT_LIMIT_S, "--max-wall-s", help=MAX_WALL_HELP)):
    """lmbench latencies laid out as SOSP'03 Tables 3 (processes), 4 (context switches) and 5 (file & VM)."""
    limit = _limit(no_limit, max_wall_s)
    if ops < 1:
        raise ScenarioError("--ops", f"must be at least 1, got {ops}")
    _check_profile(profile, seed)
    _check_outputs(json=json_out, csv=csv_out, plot=plot)
    ms = split_list(modes, "--modes", list(MODES))
    check_modes(ms, profile)
    ws = [f"lmbench.{c}" for _, cols in TABLES.values() for c in cols]
    rows = _run_rows(ws, ms, profile, seed, ops, None, 1, {"mmu": mmu} if mmu != "structural" else None,
                     limit=limit, what="lmbench run")
    for _key, (title, cols) in TABLES.items():
        t = Table(title=f"{title}, profile {profile}")
        t.add_column("Config")
        for c in cols:
            t.add_column(c, justify="right")
        for m in ms:
            vals = []
            for c in cols:
                r = next(r for r in rows if r["workload"] == f"lmbench.{c}" and r["mode"] == m)
                vals.append(f"{r['value']:.3g}")
            t.add_row(m, *vals)
        out.print(t)
    rel = [dict(r, value=r["relative_to_native"]) for r in rows]
    plot_fns = [(lambda f: plots.grouped_log_bars(rel, f, f"lmbench relative to native, profile {profile}",
                                                  plots.TIME_RATIO_LABEL,
                                                  label_key=lambda r: r["workload"].split(".", 1)[1]),
                 plot)] if plot else []
    _emit(rows, _meta(profile, seed), json_out, csv_out, plot_fns)


# ---------------------------------------------------------------------------------------------- nanobench
@app.command()
@user_errors
def nanobench(modes: str = typer.Option("native,bt,hvm-shadow", "--modes", "-m", help=MODES_HELP),
              profile: str = typer.Option("p4-2006", "--profile", "-p", help="profile name or TOML"),
              seed: int = typer.Option(0),
              ops: int = typer.Option(10000, help="iterations per test"),
              json_out: Optional[Path] = typer.Option(None, "--json"),
              csv_out: Optional[Path] = typer.Option(None, "--csv"),
              plot: Optional[Path] = typer.Option(None, "--plot"),
              no_limit: bool = typer.Option(False, "--no-limit", help=NO_LIMIT_HELP),
              max_wall_s: float = typer.Option(DEFAULT_LIMIT_S, "--max-wall-s", help=MAX_WALL_HELP)):
    """The ASPLOS'06 nanobenchmarks (cycles per operation), beside the published values where the profile is p4-2006."""
    limit = _limit(no_limit, max_wall_s)
    if ops < 1:
        raise ScenarioError("--ops", f"must be at least 1, got {ops}")
    _check_profile(profile, seed)
    _check_outputs(json=json_out, csv=csv_out, plot=plot)
    ms = split_list(modes, "--modes", list(MODES))
    check_modes(ms, profile)
    ws = list(NANO)
    rows = _run_rows(ws, ms, profile, seed, ops, None, 1, limit=limit, what="nanobench run")
    t = Table(title=f"ASPLOS'06 nanobenchmarks (cycles), profile {profile}")
    t.add_column("test")
    for m in ms:
        t.add_column(m, justify="right")
        if profile == "p4-2006" and m in PUBLISHED[ws[0]]:
            t.add_column(f"{m} (paper)", justify="right", style="dim")
    for w in ws:
        cells = []
        for m in ms:
            r = next(r for r in rows if r["workload"] == w and r["mode"] == m)
            cells.append(f"{r['value']:.0f}")
            if profile == "p4-2006" and m in PUBLISHED[w]:
                pub = PUBLISHED[w][m]
                tag = " (calibration)" if m != BASELINE and validation.role_of(w, m) == "calibration" else ""
                cells.append(f"{pub}{tag}" if pub is not None else "-")
        t.add_row(w.split(".", 1)[1], *cells)
    out.print(t)
    pub = {(w.split(".", 1)[1], m): float(v) for w in ws for m, v in PUBLISHED.get(w, {}).items()
           if isinstance(v, (int, float)) and not isinstance(v, bool) and m in ms} \
        if profile == "p4-2006" else None  # the paper's cycles (relative entries such as 'native+2000' not drawn)
    plot_fns = [(lambda f: plots.grouped_log_bars(rows, f, f"Nanobenchmarks, profile {profile}", "cycles per operation",
                                                  label_key=lambda r: r["workload"].split(".", 1)[1],
                                                  published=pub), plot)] if plot else []
    _emit(rows, _meta(profile, seed), json_out, csv_out, plot_fns)


# ---------------------------------------------------------------------------------------------- list
@app.command("list")
@user_errors
def list_(what: str = typer.Argument(..., help="modes | workloads | profiles | hypercalls | schedulers"),
          json_out: Optional[Path] = typer.Option(None, "--json", help="also write the listing as JSON to FILE "
                                                  "('-': print JSON instead of the table)"),
          csv_out: Optional[Path] = typer.Option(None, "--csv", help="also write the listing as CSV to FILE")):
    """List modes, workloads, profiles, hypercalls or schedulers."""
    rows = _listing(what)
    to_stdout = json_out is not None and str(json_out) == "-"
    _check_outputs(json=None if to_stdout else json_out, csv=csv_out)
    text = json.dumps({"pvsim_version": __version__, "listing": what, "results": rows}, indent=1,
                      sort_keys=True, default=str) + "\n"
    if to_stdout:
        out.print_json(text)
    with Outputs() as outs:
        if json_out is not None and not to_stdout:
            outs.write(json_out, text)
        if csv_out is not None:
            outs.write(csv_out, pd.DataFrame(rows).to_csv(index=False))
    if to_stdout:
        return
    t = Table(title=what)
    for c in rows[0]:
        t.add_column(c)
    for r in rows:
        t.add_row(*[str(v) for v in r.values()])
    out.print(t)


def _listing(what: str) -> list[dict]:
    if what == "modes":
        return [{"mode": m.name, "guest type": m.guest_type or "-", "control": m.control or "-", "cpu": m.cpu,
                 "paging": m.paging, "devices": m.devices, "needs": ",".join(sorted(m.needs)) or "-",
                 "summary": m.summary} for m in MODES.values()]
    if what == "workloads":
        return [{"workload": n, "metric": s.metric, "group": s.group or "-", "description": s.description}
                for n, s in BUILTIN.items()]
    if what == "profiles":
        return [{"profile": n, "clock GHz": load_profile(n).clock_ghz, "constants": len(load_profile(n).constants),
                 "description": load_profile(n).description} for n in bundled_profiles()]
    if what == "hypercalls":
        return [{"nr": nr, "name": h.name, "who": ",".join(sorted(h.guests)) or "-"} for nr, h in HYPERCALLS.items()]
    if what == "schedulers":
        return [{"scheduler": n} for n in SCHEDULER_NAMES]
    raise ScenarioError("list", f"unknown listing {what!r}; allowed: modes, workloads, profiles, hypercalls, schedulers")


# ---------------------------------------------------------------------------------------------- sweep
#: Seconds between progress lines when stderr is not a terminal (a log, a CI job).
PROGRESS_EVERY_S = 10.0


class _SweepProgress:
    """A live bar on a terminal; elsewhere a log line every PROGRESS_EVERY_S and a last one."""

    def __init__(self):
        self.bar = _progress() if err.is_terminal else None
        self.task = None
        self.last = 0.0
        self.first = True

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
            self.task = self.bar.add_task("sweeping", total=None)
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)
        return False

    def __call__(self, st: sw.Progress) -> None:
        if self.first:
            self.first = False
            err.print(f"sweep: {st.total} runs, {st.cached} cached, {st.total - st.cached} to run",
                      markup=False, highlight=False)
        if self.bar:
            self.bar.update(self.task, completed=st.finished, total=st.total, description=st.line())
        elif st.finished == st.total or time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.last = time.monotonic()
            err.print(st.line(), markup=False, highlight=False)


@app.command()
@user_errors
def sweep(scenario: Path = typer.Argument(..., help="base scenario TOML"),
          param: list[str] = typer.Option([], "--param", help="PATH=V1,V2,... (repeatable), e.g. "
                                                              "domains[0].weight=128,256,512 or host.pcpus=1,2"),
          name: list[str] = typer.Option([], "--name", help="PATH=ALIAS: the column param.ALIAS for a swept path"),
          seeds: str = typer.Option("0", help="comma-separated seeds"),
          workers: int = typer.Option(1, help="worker processes (local pool) or Dask workers (local cluster)"),
          engine: str = typer.Option("local", help="local (this machine) or dask"),
          scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                                  help="Dask scheduler address (default: a LocalCluster)"),
          chunk: Optional[int] = typer.Option(None, help="runs per task (default: about 4 tasks per worker)"),
          cache: Path = typer.Option(Path(".pvsim-cache/sweeps"), help="folder of finished runs, by run_id"),
          no_cache: bool = typer.Option(False, "--no-cache", help="neither read nor write the run cache"),
          json_out: Optional[Path] = typer.Option(None, "--json"),
          csv_out: Optional[Path] = typer.Option(None, "--csv"),
          parquet_out: Optional[Path] = typer.Option(None, "--parquet"),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="no table on stdout"),
          migrate_only: bool = typer.Option(False, "--migrate", help="run only the scenario's \\[\\[migrations]] "
                                            "(as pvsim migrate: no guest runs) and give a row per migration"),
          no_limit: bool = typer.Option(False, "--no-limit", help=NO_LIMIT_HELP),
          max_wall_s: float = typer.Option(DEFAULT_LIMIT_S, "--max-wall-s", help=MAX_WALL_HELP)):
    """Run a grid of scenario variants (and seeds), each run cached by its run_id as it finishes, so a
    rerun or a resumed sweep computes only what is missing; rows carry their parameters and run_id.
    With --migrate each point runs only its migrations (downtime, total time, bytes / RAM, rounds)."""
    limit = _limit(no_limit, max_wall_s)
    _check_outputs(json=json_out, csv=csv_out, parquet=parquet_out)
    if engine not in sw.ENGINES:
        raise ScenarioError("--engine", f"unknown engine {engine!r}; allowed: {', '.join(sw.ENGINES)}")
    if scheduler is not None and engine != "dask":
        raise ScenarioError("--scheduler", "a Dask scheduler address needs --engine dask")
    if chunk is not None and chunk < 1:
        raise ScenarioError("--chunk", f"must be at least 1, got {chunk}")
    if workers < 1:
        raise ScenarioError("--workers", f"must be at least 1, got {workers}")
    base = sw.load_base(scenario)
    grid = dict(sw.parse_param(p) for p in param)
    names = dict(sw.parse_name(n) for n in name)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ScenarioError("--seeds", f"must be comma-separated integers, got {seeds!r}") from None
    if not seed_list:
        raise ScenarioError("--seeds", "no seeds given")
    bad = next((s for s in seed_list if not 0 <= s <= 2 ** 63 - 1), None)
    if bad is not None:
        raise ScenarioError("--seeds", f"a seed is 0..2**63-1 (as in a scenario file), got {bad}")
    runner = "migrate" if migrate_only else "run"
    runs = sw.expand(base, grid, seed_list, names, runner)
    if limit is not None and runner == "run":  # the estimate probes full runs; migrations alone are quick
        store = None if no_cache else sw.Store(cache)
        todo = [r for r in runs if store is None or store.get(r.run_id) is None]
        check_limit(estimate_sweep(todo), limit, "sweep")
    for msg in sw.timeline_overrides(base, grid):
        err.print(f"pvsim: warning: {msg}", markup=False, highlight=False, soft_wrap=True)
    with _SweepProgress() as prog:
        res = sw.run_sweep(runs, workers=workers, engine=engine, address=scheduler, chunk=chunk,
                           cache=None if no_cache else cache, progress=prog, base=base)
    if res.failures:
        for i, msg in sorted(res.failures.items()):
            err.print(f"pvsim: run {i} ({runs[i].run_id}) failed: {msg}", markup=False, highlight=False)
        err.print(f"pvsim: {len(res.failures)} of {len(runs)} runs failed; nothing written "
                  f"(the finished runs are cached: rerun to retry the rest)", markup=False, highlight=False)
        raise typer.Exit(1)
    rows = res.rows
    if not quiet:
        t = Table(title=f"sweep of {scenario.name}: {len(runs)} runs, {len(rows)} rows")
        pcols = [k for k in rows[0] if k.startswith("param.")] if rows else []
        if runner == "migrate":
            for c in ["run_id", *pcols, "seed", "domain", "policy", "total ms", "downtime ms", "x RAM", "rounds",
                      "stop"]:
                t.add_column(c)
            for r in rows:
                t.add_row(r["run_id"], *[str(r[c]) for c in pcols], str(r.get("seed")), r["domain"], r["policy"],
                          f"{r['total_ms']:.1f}", f"{r['downtime_ms']:.2f}", f"{r['bytes_over_ram']:.2f}",
                          str(r["rounds"]), r["stop_reason"])
        else:
            for c in ["run_id", *pcols, "seed", "domain", "workload", "metric", "value"]:
                t.add_column(c)
            for r in rows:
                t.add_row(r["run_id"], *[str(r[c]) for c in pcols], str(r.get("seed")), r["domain"], r["workload"],
                          r["metric"], f"{r['value']:.4g}")
        out.print(t)
    meta = {"pvsim_version": __version__, "profile": base.get("host", {}).get("profile", "modern"),
            "seed": seed_list, "sweep": {"grid": grid, "names": names, "runs": len(runs)}
            | ({"runner": runner} if runner != "run" else {})}
    res_obj = Results(rows, meta)
    with Outputs() as outs:
        if json_out:
            res_obj.to_json(json_out, outs)
        if csv_out:
            res_obj.to_csv(csv_out, outs)
        if parquet_out:
            res_obj.to_parquet(parquet_out, outs)


# ---------------------------------------------------------------------------------------------- calibrate
@app.command()
@user_errors
def calibrate(results: Path = typer.Argument(..., help="an lmbench summary (the text 'make see' prints)"),
              out_path: Path = typer.Option(..., "--out", "-o", help="the profile file to write (.toml)"),
              base: str = typer.Option("xeon-2003", help="the profile whose hypervisor costs are kept"),
              name: Optional[str] = typer.Option(None, help="the new profile's name (default: the file's stem)"),
              modes: str = typer.Option("pv32,bt", "--modes", "-m", help="modes to predict on that machine"),
              ops: int = typer.Option(200, help="operations per lmbench op in the fit's runs"),
              json_out: Optional[Path] = typer.Option(None, "--json", help="the predictions as JSON")):
    """Fit the native primitive costs of a profile to your machine's lmbench run (scipy least squares),
    keep the base profile's hypervisor costs, write the profile, and predict the virtualized numbers."""
    _check_outputs(out=out_path, json=json_out)
    if out_path.suffix != ".toml":
        raise ScenarioError("--out", f"{str(out_path)!r}: a profile file ends in .toml")
    if ops < 1:
        raise ScenarioError("--ops", f"must be at least 1, got {ops}")
    if not results.is_file():
        raise ScenarioError("results", f"{str(results)!r} is not a file")
    try:
        text = results.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScenarioError("results", f"{results}: not a UTF-8 text file") from None
    measured = cal.parse_lmbench(text, str(results))
    ms = split_list(modes, "--modes", list(MODES))
    load_profile(base, field_name="--base")
    with _progress() as prog:
        prog.add_task("fitting native costs", total=None)
        f = cal.fit(measured, base, n_ops=ops)
    pname = name or out_path.stem
    body = cal.profile_file(f, pname, results.name)
    with Outputs() as outs:
        outs.write(out_path, body)
    t = Table(title=f"fitted on {results.name} ({measured.host}, {measured.mhz:g} MHz), base {base}")
    for c in ("constant", "base", "fitted"):
        t.add_column(c)
    for k, v in f.fitted.items():
        t.add_row(k, f"{load_profile(base).value(k):g}", f"{v:.4g}")
    out.print(t)
    out.print(f"kept from {base}: {len(f.kept)} constants the benchmarks cannot resolve; residuals: "
              + ", ".join(f"{o} {r:+.2%}" for o, r in f.residuals.items()), markup=False)
    ws = [f"lmbench.{o}" for o in f.measured_us]
    check_modes(ms, str(out_path))
    rows = _run_rows(ws, ms, str(out_path), 0, ops, None, 1)
    t = Table(title=f"predicted on {measured.host} (profile {out_path}), latency / native")
    t.add_column("op")
    t.add_column("native us (measured)", justify="right")
    for m in ms:
        t.add_column(m, justify="right")
    for w in ws:
        rel = [next(r for r in rows if r["workload"] == w and r["mode"] == m)["relative_to_native"] for m in ms]
        t.add_row(w.split(".", 1)[1], f"{f.measured_us[w.split('.', 1)[1]]:g}", *[f"{x:.2f}" for x in rel])
    out.print(t)
    if json_out:
        _emit(rows, _meta(str(out_path), 0), json_out, None)


# ---------------------------------------------------------------------------------------------- report
@app.command()
@user_errors
def report(html_out: Path = typer.Option(Path("out/report.html"), "--html", help="the self-contained HTML page"),
           md_out: Optional[Path] = typer.Option(None, "--markdown",
                                                 help="the same as Markdown (default: beside the HTML, .md)"),
           json_out: Optional[Path] = typer.Option(None, "--json"),
           groups: str = typer.Option(",".join(validation.GROUPS), help="comma-separated: nano, lmbench"),
           ops: int = typer.Option(2000, help="operations per (test, mode) run"),
           cases: bool = typer.Option(True, help="also run the visible section-7 cases 3, 4, 7 and 11")):
    """Every published number of the validation set beside pvsim's prediction: deviation, band, pass or
    fail, calibration or validation, the figure, the profile and the command that reproduces it; and the
    checks of the visible cases 3, 4, 7 and 11."""
    md_out = md_out or html_out.with_suffix(".md")
    _check_outputs(html=html_out, markdown=md_out, json=json_out)
    if ops < 1:
        raise ScenarioError("--ops", f"must be at least 1, got {ops}")
    gs = tuple(split_list(groups, "--groups", list(validation.GROUPS)))
    with _progress() as prog:
        task = prog.add_task("predicting", total=None)
        rows = validation.predict(gs, ops=ops, progress=lambda d: prog.update(task, description=f"predicting {d}"))
        checks = tuple(validation.case_checks(ops=ops, progress=lambda d: prog.update(
            task, description=f"case checks {d}"))) if cases else ()
    s = validation.summary(rows)
    t = Table(title=f"validation: {s['validation_passed']} of {s['validation']} within their band "
                    f"(+{s['calibration']} calibration rows)")
    for c in ("test", "mode", "published", "pvsim", "deviation", "band", "result", "role"):
        t.add_column(c)
    for r in rows:
        d = r.record()
        t.add_row(d["test"], d["mode"], f"{d['published']:g}", f"{d['predicted']:.4g}", f"{d['deviation']:+.1%}",
                  d["band"], d["result"], d["role"])
    out.print(t)
    if checks:
        tc = Table(title="visible cases 3, 4, 7, 11")
        for c in ("case", "check", "profile", "pvsim", "band", "result"):
            tc.add_column(c)
        for c in checks:
            tc.add_row(c.case, c.name, c.profile, "-" if c.value is None else f"{c.value:.4g}", c.band, c.result)
        out.print(tc)
    with Outputs() as outs:
        outs.write(html_out, validation.html_page(rows, checks))
        outs.write(md_out, validation.markdown(rows, checks) + "\n")
        if json_out:
            Results([r.record() for r in rows] + [c.record() for c in checks],
                    {"pvsim_version": __version__, "summary": s}).to_json(json_out, outs)


@app.command()
def version():
    """Print pvsim's version."""
    out.print(__version__)


app.command()(user_errors(xenalyze))
for _cmd in (remus, failover, availability, convert):
    app.command()(user_errors(_cmd))
app.add_typer(xl_app, name="xl", help="xl-style scheduler controls and views of a simulated run")


def main() -> None:
    try:
        app()
    except ScenarioError as e:  # pragma: no cover - raised outside a command
        err.print(f"pvsim: error: {e}", markup=False)
        sys.exit(2)
