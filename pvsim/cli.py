"""The ``pvsim`` command line (Typer). ``pvsim --help`` lists the commands; each has ``--help``.

Errors in the user's input (a bad scenario or value) print one line ``pvsim: error: <field>: <why>``
on stderr and exit with status 2, writing nothing.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from guest_kernels.modes import BASELINE, MODES
from hypercalls.table import HYPERCALLS
from pvsim import plots
from pvsim import sweep as sw
from pvsim.compare import check_modes, split_list
from pvsim.compare import compare as run_compare
from pvsim.core.errors import ScenarioError
from pvsim.core.profile import bundled_profiles, load_profile
from pvsim.core.version import __version__
from pvsim.estimate import DEFAULT_LIMIT_S, ProgressLog, check_limit, estimate, estimate_sweep
from pvsim.results import Outputs, Results, check_output_path
from pvsim.scenario import Scenario
from pvsim.sched import SCHEDULER_NAMES
from pvsim.system import build
from pvsim.workloads import BUILTIN, CALIBRATION_SET, NANO, PUBLISHED, TABLES
from pvsim.xl import app as xl_app

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
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


def _run_rows(workloads, modes, profile, seed, ops, duration_ms, pcpus, options=None) -> list[dict]:
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
def run(scenario: Path = typer.Argument(..., help="scenario TOML file"),
        seed: Optional[int] = typer.Option(None, help="override the scenario's seed (0..2**63-1)"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="write results as JSON"),
        csv_out: Optional[Path] = typer.Option(None, "--csv", help="write results as CSV"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no table on stdout"),
        no_limit: bool = typer.Option(False, "--no-limit", help=NO_LIMIT_HELP),
        max_wall_s: float = typer.Option(DEFAULT_LIMIT_S, "--max-wall-s", help=MAX_WALL_HELP)):
    """Run one scenario file and print a row per domain."""
    limit = _limit(no_limit, max_wall_s)
    _check_outputs(json=json_out, csv=csv_out)
    sc = Scenario.from_toml(scenario)
    if seed is not None:
        sc = sc.with_seed(seed)
    est = estimate(sc) if limit is not None else None
    if est is not None:
        check_limit(est, limit)
    system = build(sc)
    log = ProgressLog(f"run {sc.name}", est, err.is_terminal, lambda line: err.print(line, markup=False))
    with _progress() as prog:
        task = prog.add_task(f"running {sc.name}", total=1.0)

        def step(f):
            prog.update(task, completed=f)
            log(f)
        res = system.run(progress=step)
    with Outputs() as outs:
        if json_out:
            res.to_json(json_out, outs)
        if csv_out:
            res.to_csv(csv_out, outs)
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
                                                                     "(and <name>-breakdown.png beside it)")):
    """Run workloads under several modes; print a table relative to native; plot SOSP'03 Figure 3 style."""
    _check_profile(profile, seed)
    _check_outputs(json=json_out, csv=csv_out, plot=plot)
    ws = split_list(workload, "--workload", list(BUILTIN))
    ms = split_list(modes, "--modes", list(MODES))
    check_modes(ms, profile)
    rows = _run_rows(ws, ms, profile, seed, ops, duration_ms, pcpus, {"mmu": mmu} if mmu != "structural" else None)
    t = Table(title=f"pvsim compare (profile {profile}; relative to native)")
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
            rel = r["relative_to_native"]
            cells.append(f"{r['value']:.4g} ({rel:.3f})" if rel is not None else f"{r['value']:.4g}")
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
            plot: Optional[Path] = typer.Option(None, "--plot", help="bar chart of ratios to native")):
    """lmbench latencies laid out as SOSP'03 Tables 3 (processes), 4 (context switches) and 5 (file & VM)."""
    _check_profile(profile, seed)
    _check_outputs(json=json_out, csv=csv_out, plot=plot)
    ms = split_list(modes, "--modes", list(MODES))
    check_modes(ms, profile)
    ws = [f"lmbench.{c}" for _, cols in TABLES.values() for c in cols]
    rows = _run_rows(ws, ms, profile, seed, ops, None, 1, {"mmu": mmu} if mmu != "structural" else None)
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
                                                  "latency / native", label_key=lambda r: r["workload"].split(".", 1)[1]),
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
              plot: Optional[Path] = typer.Option(None, "--plot")):
    """The ASPLOS'06 nanobenchmarks (cycles per operation), beside the published values where the profile is p4-2006."""
    _check_profile(profile, seed)
    _check_outputs(json=json_out, csv=csv_out, plot=plot)
    ms = split_list(modes, "--modes", list(MODES))
    check_modes(ms, profile)
    ws = list(NANO)
    rows = _run_rows(ws, ms, profile, seed, ops, None, 1)
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
                tag = " (calibration)" if w in CALIBRATION_SET and m != BASELINE else ""
                cells.append(f"{pub}{tag}" if pub is not None else "-")
        t.add_row(w.split(".", 1)[1], *cells)
    out.print(t)
    plot_fns = [(lambda f: plots.grouped_log_bars(rows, f, f"Nanobenchmarks, profile {profile}", "cycles per operation",
                                                  label_key=lambda r: r["workload"].split(".", 1)[1]), plot)] \
        if plot else []
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
@app.command()
@user_errors
def sweep(scenario: Path = typer.Argument(..., help="base scenario TOML"),
          param: list[str] = typer.Option([], "--param", help="PATH=V1,V2,... (repeatable), e.g. "
                                                              "domains[0].weight=128,256,512 or host.pcpus=1,2"),
          seeds: str = typer.Option("0", help="comma-separated seeds"),
          workers: int = typer.Option(1, help="worker processes"),
          json_out: Optional[Path] = typer.Option(None, "--json"),
          csv_out: Optional[Path] = typer.Option(None, "--csv"),
          no_limit: bool = typer.Option(False, "--no-limit", help=NO_LIMIT_HELP),
          max_wall_s: float = typer.Option(DEFAULT_LIMIT_S, "--max-wall-s", help=MAX_WALL_HELP)):
    """Run a grid of scenario variants (and seeds); flat rows carry their parameters and a stable run_id."""
    limit = _limit(no_limit, max_wall_s)
    _check_outputs(json=json_out, csv=csv_out)
    base = sw.load_base(scenario)
    grid = dict(sw.parse_param(p) for p in param)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ScenarioError("--seeds", f"must be comma-separated integers, got {seeds!r}") from None
    bad = next((s for s in seed_list if not 0 <= s <= 2 ** 63 - 1), None)
    if bad is not None:
        raise ScenarioError("--seeds", f"a seed is 0..2**63-1 (as in a scenario file), got {bad}")
    if limit is not None:
        check_limit(estimate_sweep(sw.expand(base, grid, seed_list)), limit, "sweep")
    with _progress() as prog:
        task = prog.add_task("sweeping", total=None)
        rows = sw.sweep(base, grid, seed_list, workers=workers,
                        progress=lambda i, n: prog.update(task, completed=i, total=n))
    t = Table(title=f"sweep of {scenario.name}: {len(rows)} rows")
    pcols = [k for k in rows[0] if k.startswith("param.")] if rows else []
    for c in ["run_id", *pcols, "domain", "workload", "metric", "value"]:
        t.add_column(c)
    for r in rows:
        t.add_row(r["run_id"], *[str(r[c]) for c in pcols], r["domain"], r["workload"], r["metric"], f"{r['value']:.4g}")
    out.print(t)
    _emit(rows, {"pvsim_version": __version__, "profile": base.get("host", {}).get("profile", "modern"),
                 "seed": seed_list}, json_out, csv_out)


@app.command()
def version():
    """Print pvsim's version."""
    out.print(__version__)


app.add_typer(xl_app, name="xl", help="xl-style scheduler controls and views of a simulated run")


def main() -> None:
    try:
        app()
    except ScenarioError as e:  # pragma: no cover - raised outside a command
        err.print(f"pvsim: error: {e}", markup=False)
        sys.exit(2)
