"""``pvsim xl ...``: xl-style scheduler controls and views of a simulated run.

Each command loads a scenario (``--scenario FILE``), applies the change the command describes at
simulated time ``--at-ms`` (default 0), runs the scenario and prints what ``xl`` would print at
the end of the run. Examples::

    pvsim xl list --scenario examples/consolidation.toml
    pvsim xl sched-credit --scenario examples/consolidation.toml -d batch -w 512 -c 0 --at-ms 500
    pvsim xl sched-credit --scenario s.toml -s -t 10 -r 500
    pvsim xl vcpu-pin --scenario s.toml build 0 1 --at-ms 200
    pvsim xl vcpu-list --scenario s.toml --shares
    pvsim xl sched-rtds --scenario rt.toml -d rt1 -v all -p 10000 -b 2500 -e 0
    pvsim xl migrate examples/migrate_in_run.toml other h2 --at-ms 50
    pvsim xl save s.toml app app.img --at-ms 40 ; pvsim xl restore s.toml app.img --at-ms 10
    pvsim xl remus examples/two_hosts.toml db h2 -i 100 [--fail-at-ms 777 | --curve]

``migrate`` adds a ``[[migrations]]`` entry and runs it in the run (:mod:`pvsim.migrate.inrun`);
``save`` / ``restore`` stream the domain non-live through :mod:`pvsim.migrate.save` and keep its
state in a file (:mod:`pvsim.xlsave`; docs/migration.md says what that image simplifies); ``remus``
runs the same Remus model as ``pvsim remus`` (:func:`pvsim.hacli.run_remus`; ``-c`` for COLO).

Command and option names follow ``tools/xl/xl_cmdtable.c``.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from pydantic import ValidationError

from guest_kernels.modes import CONTROL_DOMAIN, MODES
from pvsim import hacli, xlsave
from pvsim import xlviews as V
from pvsim.core.engine import Engine
from pvsim.core.errors import ScenarioError
from pvsim.core.schema import unknown
from pvsim.core.version import __version__
from pvsim.ha.remus import COLO_DIVERGENCE, DEFAULT_INTERVAL_MS
from pvsim.io.devices import Pipe
from pvsim.migrate import live as migration
from pvsim.results import Outputs, check_output_path
from pvsim.scenario import DomainSpec, Scenario, parse_cpulist
from pvsim.sched.params import validate_sched_params
from pvsim.sched.xl import (
    share_table,
    xl_list,
    xl_sched_credit,
    xl_sched_credit2,
    xl_sched_rtds,
    xl_vcpu_list,
)
from pvsim.system import build
from pvsim.xlcfg import is_xlcfg, load_scenario

app = typer.Typer(
    help="xl-style scheduler controls (sched-credit, sched-credit2, sched-rtds, vcpu-pin) and views "
         "(list, vcpu-list) of a simulated run of a scenario file.",
    no_args_is_help=True,
    add_completion=False,
)

SCEN = typer.Option(None, "--scenario", "-f", help="scenario TOML file (or an xl.cfg domain file) to simulate")
DUR = typer.Option(None, "--duration-ms", help="override the scenario's run length (ms)")
SEED = typer.Option(None, "--seed", help="override the scenario's seed")
AT = typer.Option(0.0, "--at-ms", help="simulated time (ms) at which the change is applied")
SHARES = typer.Option(False, "--shares", help="also print CPU share, steal, switches and wake latency per domain")


def _fail(e: Exception):
    typer.echo(f"pvsim: error: {e}", err=True)
    raise typer.Exit(2)


def _load(scenario: str, duration_ms, seed, host=None, cfgs=()) -> Scenario:
    if cfgs:
        sc = load_scenario(list(cfgs), host, warn=lambda t: typer.echo(f"pvsim: {t}", err=True))
    elif scenario is None:
        raise ScenarioError("--scenario", "give a scenario file (-f FILE)")
    elif is_xlcfg(scenario):
        sc = load_scenario([scenario], host, warn=lambda t: typer.echo(f"pvsim: {t}", err=True))
    else:
        sc = Scenario.from_toml(scenario)
    if duration_ms is not None:
        sc = sc.with_run(duration_ms=float(duration_ms), ops=None, warmup_ms=0.0)
    if seed is not None:
        sc = sc.with_seed(int(seed))
    return sc


def _build(scenario: str, duration_ms, seed, host=None, cfgs=()):
    return _built(_load(scenario, duration_ms, seed, host, cfgs))


def _built(sc: Scenario):
    system = build(sc)
    r = system.runner
    mem = {}
    for d in system.hosts[0].domains:
        domid = d.domain.domid
        if domid in r.domains:
            r.domains[domid].name = d.spec.name
        mem[domid] = d.spec.memory_mib
    system.xl_changes = []  # (at_ns, text, source) of every change the view includes
    for t in sc.timeline:
        kv = " ".join(f"{k}={v}" for k, v in t.params.items())
        system.xl_changes.append((int(round(t.at_ms * 1e6)), f"{t.domain or t.host or 'pool'} {kv}", "timeline"))
    return system, r, mem


def _domid(r, dom: str) -> int:
    for domid, d in r.domains.items():
        if d.name == dom or str(domid) == dom:
            return domid
    raise ScenarioError("domain", f"no domain {dom!r}; have {', '.join(d.name for d in r.domains.values())}")


def _need(r, name: str):
    if r.sched.name != name:
        raise ScenarioError("scheduler", f"cpupool Pool-0 uses scheduler {r.sched.name!r}, not {name!r}")


def _at(r, at_ms: float, fn, system=None, text: str = ""):
    at = int(round(at_ms * 1_000_000))
    r.at(at, lambda _r: fn())
    if system is not None:
        system.xl_changes.append((at, text, "command"))


def _check_outputs(json_out, csv_out):
    for opt, p in (("--json", json_out), ("--csv", csv_out)):
        if p is not None and str(p) != "-":
            check_output_path(p, opt)


def _view_note(system, r, where: str = "end of the run") -> tuple[str, dict]:
    """When the view is taken and which changes it includes (the command's and the timeline's)."""
    now = r.now
    done = sorted(c for c in system.xl_changes if c[0] <= now)
    view = {"at_ns": int(now), "at_ms": now / 1e6,
            "changes": [{"at_ms": a / 1e6, "change": t, "source": src} for a, t, src in done]}
    mine = [c for c in done if c[2] == "command"]
    later = [c for c in done if c[2] == "timeline" and mine and c[0] > max(m[0] for m in mine)]
    lines = [f"# view at t = {now / 1e6:.3f} ms ({where}); changes included: "
             + ("; ".join(f"{a / 1e6:g} ms {t} ({src})" for a, t, src in done) if done else "none")]
    if later:
        lines.append("# note: timeline changes after this command's change override it where they set the same "
                     "parameter: " + "; ".join(f"{a / 1e6:g} ms {t}" for a, t, _s in later))
        view["overridden_by_timeline"] = [{"at_ms": a / 1e6, "change": t} for a, t, _s in later]
    return "\n".join(lines), view


def _finish(system, r, text_fn, shares: bool, rows_fn=None, json_out=None, csv_out=None, run=True,
            where="end of the run"):
    if run:
        system.run()
    note, view = _view_note(system, r, where)
    rows = rows_fn() if rows_fn is not None else []
    doc = {"pvsim_version": __version__, "view": view, "results": rows}
    text = json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n"
    if json_out is not None and str(json_out) == "-":
        typer.echo(text, nl=False)
        return
    with Outputs() as outs:
        if json_out is not None:
            outs.write(json_out, text)
        if csv_out is not None:
            outs.write(csv_out, pd.DataFrame(rows).to_csv(index=False))
    typer.echo(note)
    typer.echo(text_fn())
    if shares:
        typer.echo("")
        typer.echo(share_table(r))


JSON = typer.Option(None, "--json", help="also write the view as JSON ('-': print JSON instead of the table)")
CSV = typer.Option(None, "--csv", help="also write the view's rows as CSV")
HOST = typer.Option(None, "--host", help="for xl.cfg files: a TOML file with the host (\\[host], \\[scheduler], \\[run])")


@app.command("list")
def list_cmd(domains: list[str] = typer.Argument(None, help="domains (names or ids); default all"),
             scenario: str = SCEN, duration_ms: float = DUR, seed: int = SEED, shares: bool = SHARES,
             json_out: Optional[Path] = JSON, csv_out: Optional[Path] = CSV, host: Optional[Path] = HOST):
    """xl list: domains, memory, vCPUs, state and CPU time at the end of the run."""

    try:
        _check_outputs(json_out, csv_out)
        system, r, mem = _build(scenario, duration_ms, seed, host)
        ids = {_domid(r, d) for d in domains} if domains else None
        _finish(system, r, lambda: xl_list(r, mem, ids), shares, lambda: V.list_rows(r, mem, ids), json_out, csv_out)
    except ScenarioError as e:
        _fail(e)


@app.command("vcpu-list")
def vcpu_list_cmd(domains: list[str] = typer.Argument(None, help="domains (names or ids); default all"),
                  scenario: str = SCEN, duration_ms: float = DUR, seed: int = SEED, shares: bool = SHARES,
                  json_out: Optional[Path] = JSON, csv_out: Optional[Path] = CSV, host: Optional[Path] = HOST):
    """xl vcpu-list: per-vCPU pCPU, state, CPU time and hard / soft affinity."""

    try:
        _check_outputs(json_out, csv_out)
        system, r, _mem = _build(scenario, duration_ms, seed, host)
        ids = {_domid(r, d) for d in domains} if domains else None
        _finish(system, r, lambda: xl_vcpu_list(r, ids), shares, lambda: V.vcpu_rows(r, ids), json_out, csv_out)
    except ScenarioError as e:
        _fail(e)


def _parse_cpus(spec: str, n: int, where: str):

    if spec in ("-",):
        return "keep"
    return set(parse_cpulist(spec, n, where))


@app.command("vcpu-pin")
def vcpu_pin_cmd(domain: str = typer.Argument(..., help="domain name or id"),
                 vcpu: str = typer.Argument(..., help="vCPU number or 'all'"),
                 hard: str = typer.Argument(..., help="hard affinity: 'all', '0-3,5,^1', or '-' to keep"),
                 soft: str = typer.Argument("-", help="soft affinity, or '-' to keep"),
                 scenario: str = SCEN, duration_ms: float = DUR, seed: int = SEED, at_ms: float = AT,
                 shares: bool = SHARES, json_out: Optional[Path] = JSON, csv_out: Optional[Path] = CSV,
                 host: Optional[Path] = HOST):
    """xl vcpu-pin DOM VCPU|all HARD [SOFT] at --at-ms, then print xl vcpu-list."""

    try:
        _check_outputs(json_out, csv_out)
        system, r, _mem = _build(scenario, duration_ms, seed, host)
        domid = _domid(r, domain)
        v = None if vcpu == "all" else int(vcpu)
        h = _parse_cpus(hard, r.n_pcpus, "vcpu-pin.hard")
        s = _parse_cpus(soft, r.n_pcpus, "vcpu-pin.soft")

        def apply():
            units = r.domains[domid].units if v is None else [r._unit(domid, v)]
            for u in units:
                nh = u.hard if h == "keep" else h
                ns = u.soft if s == "keep" else (None if s is not None and len(s) == r.n_pcpus else s)
                r.pin(domid, u.vcpu_id, hard=nh, soft=ns)

        _at(r, at_ms, apply, system, f"vcpu-pin {domain} {vcpu} {hard} {soft}")
        _finish(system, r, lambda: xl_vcpu_list(r, {domid}), shares, lambda: V.vcpu_rows(r, {domid}), json_out,
                csv_out)
    except (ScenarioError, ValueError) as e:
        _fail(e)


def _sched_dom_cmd(name, scenario, duration_ms, seed, at_ms, shares, domain, dom_params, glob_params, view,
                   json_out=None, csv_out=None, host=None):
    try:
        _check_outputs(json_out, csv_out)
        system, r, _mem = _build(scenario, duration_ms, seed, host)
        _need(r, name)
        ids = None
        if domain is not None:
            domid = _domid(r, domain)
            ids = {domid}
            if dom_params:
                vcpu = dom_params.pop("_vcpu", None)
                kw = {"vcpu": vcpu} if vcpu is not None else {}
                # validate now (before time 0), apply at --at-ms

                validate_sched_params(name, dom_params, f"sched-{name}", scope="vcpu" if name == "rtds" else "domain",
                                      n_pcpus=r.n_pcpus, defaults=False)
                _at(r, at_ms, lambda: r.adjust(domid, **kw, **dom_params), system,
                    f"{domain} " + " ".join(f"{k}={v}" for k, v in {**kw, **dom_params}.items()))
        elif dom_params and any(k != "_vcpu" for k in dom_params):
            raise ScenarioError(f"sched-{name}", "-w/-c/-p/-b/-e need -d DOMAIN")
        if glob_params:

            merged = {**r.sched.params, **glob_params}
            validate_sched_params(name, {k: v for k, v in merged.items()}, f"sched-{name}", n_pcpus=r.n_pcpus,
                                  defaults=False)
            _at(r, at_ms, lambda: r.adjust_global(**glob_params), system,
                "pool " + " ".join(f"{k}={v}" for k, v in glob_params.items()))
        rows = V.rtds_rows if name == "rtds" else V.sched_rows
        _finish(system, r, lambda: view(r, ids), shares, lambda: rows(r, ids), json_out, csv_out)
    except ScenarioError as e:
        _fail(e)


@app.command("sched-credit")
def sched_credit_cmd(scenario: str = SCEN,
                     domain: str = typer.Option(None, "-d", "--domain", help="domain name or id"),
                     weight: int = typer.Option(None, "-w", "--weight", help="weight 1..65535"),
                     cap: int = typer.Option(None, "-c", "--cap", help="cap in % of one pCPU (0 = none)"),
                     schedparam: bool = typer.Option(False, "-s", "--schedparam", help="set pool parameters"),
                     tslice_ms: int = typer.Option(None, "-t", "--tslice_ms", help="time slice (ms), with -s"),
                     ratelimit_us: int = typer.Option(None, "-r", "--ratelimit_us", help="ratelimit (us), with -s"),
                     migr_delay_us: int = typer.Option(None, "-m", "--migr_delay_us", help="migration delay (us), with -s"),
                     duration_ms: float = DUR, seed: int = SEED, at_ms: float = AT, shares: bool = SHARES,
                     json_out: Optional[Path] = JSON, csv_out: Optional[Path] = CSV, host: Optional[Path] = HOST):
    """xl sched-credit [-d DOM [-w W] [-c CAP]] [-s [-t TSLICE] [-r RATELIMIT] [-m DELAY]]."""

    dp = {k: v for k, v in (("weight", weight), ("cap", cap)) if v is not None}
    gp = {k: v for k, v in (("tslice_ms", tslice_ms), ("ratelimit_us", ratelimit_us),
                            ("vcpu_migr_delay_us", migr_delay_us)) if v is not None}
    if gp and not schedparam:
        _fail(ScenarioError("sched-credit", "-t/-r/-m need -s"))
    _sched_dom_cmd("credit", scenario, duration_ms, seed, at_ms, shares, domain, dp, gp, xl_sched_credit, json_out,
                   csv_out, host)


@app.command("sched-credit2")
def sched_credit2_cmd(scenario: str = SCEN,
                      domain: str = typer.Option(None, "-d", "--domain", help="domain name or id"),
                      weight: int = typer.Option(None, "-w", "--weight", help="weight 1..65535"),
                      cap: int = typer.Option(None, "-c", "--cap", help="cap in % of one pCPU (0 = none)"),
                      schedparam: bool = typer.Option(False, "-s", "--schedparam", help="set pool parameters"),
                      ratelimit_us: int = typer.Option(None, "-r", "--ratelimit_us", help="ratelimit (us), with -s"),
                      duration_ms: float = DUR, seed: int = SEED, at_ms: float = AT, shares: bool = SHARES,
                     json_out: Optional[Path] = JSON, csv_out: Optional[Path] = CSV, host: Optional[Path] = HOST):
    """xl sched-credit2 [-d DOM [-w W] [-c CAP]] [-s [-r RATELIMIT]]."""

    dp = {k: v for k, v in (("weight", weight), ("cap", cap)) if v is not None}
    gp = {"ratelimit_us": ratelimit_us} if ratelimit_us is not None else {}
    if gp and not schedparam:
        _fail(ScenarioError("sched-credit2", "-r needs -s"))
    _sched_dom_cmd("credit2", scenario, duration_ms, seed, at_ms, shares, domain, dp, gp, xl_sched_credit2, json_out,
                   csv_out, host)


@app.command("sched-rtds")
def sched_rtds_cmd(scenario: str = SCEN,
                   domain: str = typer.Option(None, "-d", "--domain", help="domain name or id"),
                   vcpu: str = typer.Option(None, "-v", "--vcpuid", help="vCPU number or 'all'"),
                   period_us: int = typer.Option(None, "-p", "--period", help="period (us)"),
                   budget_us: int = typer.Option(None, "-b", "--budget", help="budget (us)"),
                   extratime: int = typer.Option(None, "-e", "--extratime", help="extratime 0|1"),
                   duration_ms: float = DUR, seed: int = SEED, at_ms: float = AT, shares: bool = SHARES,
                     json_out: Optional[Path] = JSON, csv_out: Optional[Path] = CSV, host: Optional[Path] = HOST):
    """xl sched-rtds [-d DOM [-v VCPU|all] [-p PERIOD] [-b BUDGET] [-e 0|1]]; also prints deadline misses."""

    dp = {k: v for k, v in (("period_us", period_us), ("budget_us", budget_us)) if v is not None}
    if extratime is not None:
        if extratime not in (0, 1):
            _fail(ScenarioError("sched-rtds.extratime", f"must be 0 or 1, got {extratime}"))
        dp["extratime"] = bool(extratime)
    if vcpu is not None and vcpu != "all":
        try:
            dp["_vcpu"] = int(vcpu)
        except ValueError:
            _fail(ScenarioError("sched-rtds.vcpuid", f"must be a vCPU number or 'all', got {vcpu!r}"))
    _sched_dom_cmd("rtds", scenario, duration_ms, seed, at_ms, shares, domain, dp, {}, xl_sched_rtds, json_out, csv_out,
                   host)


@app.command("create")
def create_cmd(cfgs: list[str] = typer.Argument(..., help="xl.cfg domain files (Xen's tools/examples format)"),
               host: Optional[Path] = HOST, paused: bool = typer.Option(False, "-p", help="leave the domains paused "
                                                                       "(until --unpause-ms, if given)"),
               unpause_ms: float = typer.Option(None, "--unpause-ms", help="with -p: unpause at this time (ms)"),
               duration_ms: float = DUR, seed: int = SEED, shares: bool = SHARES,
               json_out: Optional[Path] = JSON, csv_out: Optional[Path] = CSV):
    """xl create CFG...: build the domains of xl.cfg files on a host, run, and print xl list."""

    try:
        _check_outputs(json_out, csv_out)
        if unpause_ms is not None and not paused:
            raise ScenarioError("--unpause-ms", "needs -p")
        system, r, mem = _build(None, duration_ms, seed, host, cfgs)
        ids = {_domid(r, d.spec.name) for d in system.hosts[0].domains if str(d.spec.name) in
               {s.name for s in system.scenario.domains[-len(cfgs):]}}
        if paused:
            _at(r, 0, lambda: [r.pause(u) for i in ids for u in r.domains[i].units], system, "create -p (paused)")
            if unpause_ms is not None:
                _at(r, unpause_ms, lambda: [r.unpause(u) for i in ids for u in r.domains[i].units], system, "unpause")
        _finish(system, r, lambda: xl_list(r, mem), shares, lambda: V.list_rows(r, mem), json_out, csv_out)
    except ScenarioError as e:
        _fail(e)


def _dom_verb(verb, domain, scenario, duration_ms, seed, at_ms, shares, json_out, csv_out, host, act):
    try:
        _check_outputs(json_out, csv_out)
        system, r, mem = _build(scenario, duration_ms, seed, host)
        domid = _domid(r, domain)  # checked before anything runs
        if domid == 0 and verb in ("destroy", "shutdown", "pause"):
            raise ScenarioError("domain", f"xl {verb}: Domain-0 cannot be {verb}{'ed' if verb != 'shutdown' else ''}")
        _at(r, at_ms, lambda: act(r, r.domains[domid].units), system, f"{verb} {domain}")
        _finish(system, r, lambda: xl_list(r, mem), shares, lambda: V.list_rows(r, mem), json_out, csv_out)
    except ScenarioError as e:
        _fail(e)


DOM = typer.Argument(..., help="domain name or id")


@app.command("destroy")
def destroy_cmd(domain: str = DOM, scenario: str = SCEN, duration_ms: float = DUR, seed: int = SEED,
                at_ms: float = AT, shares: bool = SHARES, json_out: Optional[Path] = JSON,
                csv_out: Optional[Path] = CSV, host: Optional[Path] = HOST):
    """xl destroy DOM at --at-ms: its vCPUs leave the scheduler at once; then xl list."""
    _dom_verb("destroy", domain, scenario, duration_ms, seed, at_ms, shares, json_out, csv_out, host,
              lambda r, units: [r.destroy_vcpu(u) for u in units])


@app.command("shutdown")
def shutdown_cmd(domain: str = DOM, scenario: str = SCEN, duration_ms: float = DUR, seed: int = SEED,
                 at_ms: float = AT, shares: bool = SHARES, json_out: Optional[Path] = JSON,
                 csv_out: Optional[Path] = CSV, host: Optional[Path] = HOST):
    """xl shutdown DOM at --at-ms (the guest stops at once: no shutdown protocol is modelled); then xl list."""
    _dom_verb("shutdown", domain, scenario, duration_ms, seed, at_ms, shares, json_out, csv_out, host,
              lambda r, units: [r.destroy_vcpu(u) for u in units])


@app.command("pause")
def pause_cmd(domain: str = DOM, scenario: str = SCEN, duration_ms: float = DUR, seed: int = SEED,
              at_ms: float = AT, shares: bool = SHARES, json_out: Optional[Path] = JSON,
              csv_out: Optional[Path] = CSV, host: Optional[Path] = HOST):
    """xl pause DOM at --at-ms (the domain's pause count +1 on each vCPU); then xl list."""
    _dom_verb("pause", domain, scenario, duration_ms, seed, at_ms, shares, json_out, csv_out, host,
              lambda r, units: [r.pause(u) for u in units])


@app.command("unpause")
def unpause_cmd(domain: str = DOM, scenario: str = SCEN, duration_ms: float = DUR, seed: int = SEED,
                at_ms: float = AT, shares: bool = SHARES, json_out: Optional[Path] = JSON,
                csv_out: Optional[Path] = CSV, host: Optional[Path] = HOST):
    """xl unpause DOM at --at-ms (the pause count -1); then xl list."""
    _dom_verb("unpause", domain, scenario, duration_ms, seed, at_ms, shares, json_out, csv_out, host,
              lambda r, units: [r.unpause(u) for u in units])


@app.command("info")
def info_cmd(scenario: str = SCEN, json_out: Optional[Path] = JSON, csv_out: Optional[Path] = CSV,
             host: Optional[Path] = HOST):
    """xl info: the host's pCPUs, memory, xen_caps and scheduler (no run needed: the view is at time 0)."""
    try:
        _check_outputs(json_out, csv_out)
        system, r, _mem = _build(scenario, None, None, host)
        rows = V.info_rows(system)
        _finish(system, r, lambda: V.info_text(rows), False, lambda: rows, json_out, csv_out, run=False,
                where="before the run")
    except ScenarioError as e:
        _fail(e)


@app.command("top")
def top_cmd(scenario: str = SCEN, delay_s: float = typer.Option(0.1, "-d", "--delay", help="interval (simulated "
                                                                  "seconds)"),
            duration_ms: float = DUR, seed: int = SEED, json_out: Optional[Path] = JSON,
            csv_out: Optional[Path] = CSV, host: Optional[Path] = HOST):
    """xentop -b: a table per interval of the run (CPU seconds and CPU % per domain)."""
    try:
        _check_outputs(json_out, csv_out)
        if not delay_s > 0:
            raise ScenarioError("--delay", f"must be > 0 s, got {delay_s}")
        system, r, _mem = _build(scenario, duration_ms, seed, host)
        run = system.scenario.run
        if run.duration_ms is None:
            raise ScenarioError("run", "xl top needs a run of fixed length (--duration-ms)")
        step = max(1, int(round(delay_s * 1e9)))
        end = int(round(run.duration_ms * 1e6))
        top = V.Top(r, step)
        system.start()
        t = 0
        while t < end:
            t = min(end, t + step)
            system.advance(t)
            top.sample()
        _finish(system, r, top.text, False, lambda: top.rows, json_out, csv_out, run=False)
    except ScenarioError as e:
        _fail(e)


# ------------------------------------------------------------------------------ migrate, save, restore
def _host_lists(system, gone=()) -> tuple[str, list[dict]]:
    """``xl list`` of every host now (a domain that left a host, ``gone``, is no longer listed there)."""
    texts, rows = [], []
    for h in system.hosts:
        r = h.runner
        mem = {}
        for d in h.domains:
            if d.domain.domid in r.domains:
                r.domains[d.domain.domid].name = d.spec.name
            mem[d.domain.domid] = d.spec.memory_mib
        ids = {i for i in r.domains if (h.name, i) not in gone}
        texts.append(f"host {h.name}:\n" + xl_list(r, mem, ids))
        rows.extend({"kind": "list", "host": h.name, **x} for x in V.list_rows(r, mem, ids))
    return "\n".join(texts), rows


def _check_dom(sc: Scenario, domain: str):
    names = [d.name for d in sc.domains]
    if domain not in names:
        raise unknown("DOM", domain, names, what="domain")
    d = sc.domains[names.index(domain)]
    if MODES[d.mode].vmm is None or d.name in {c[0] for c in CONTROL_DOMAIN.values()}:
        raise ScenarioError("DOM", f"domain {domain!r} (mode {d.mode!r}) cannot be saved or migrated")
    return d


def _stream(sc: Scenario, d, at_ms: float, rate_mbps) -> object:
    """The non-live save stream of domain spec ``d`` (pvsim.migrate.save's cost model) into a file
    written at ``rate_mbps``, run on an engine of its own: the finished Migration."""
    if rate_mbps is None:
        link = next((lk for lk in sc.links if d.host in lk.between), None)
        if link is None:
            raise ScenarioError("--rate-mbps", f"host {d.host!r} has no link to take the rate from; give --rate-mbps")
        rate_mbps = link.rate_mbps
    if not rate_mbps > 0:
        raise ScenarioError("--rate-mbps", f"must be > 0, got {rate_mbps}")
    eng = Engine(seed=sc.seed)
    req = migration.Request(d.name, d.host, at_ms, "xen", where="DOM", live=False)
    mig = migration.build_migration(eng, Pipe(eng, rate_mbps, 0.0), sc, req, 0)
    eng.process(mig.process())
    eng.run()
    return mig, float(rate_mbps)


def _emit(system, text: str, rows: list[dict], json_out, csv_out):
    _finish(system, system.runner, lambda: text, False, lambda: rows, json_out, csv_out, run=False,
            where="after the command")


@app.command("migrate")
def migrate_cmd(scenario: str = typer.Argument(..., help="scenario TOML file with several hosts and links"),
                domain: str = DOM, host_name: str = typer.Argument(..., metavar="HOST", help="the target host"),
                at_ms: float = AT, live: bool = typer.Option(True, "--live/--no-live", help="pre-copy while the "
                                                             "guest runs (default), or suspend first"),
                duration_ms: float = DUR, seed: int = SEED,
                json_out: Optional[Path] = JSON, csv_out: Optional[Path] = CSV):
    """xl migrate DOM HOST at --at-ms: the in-run migration ([[migrations]]) of a multi-host scenario; prints
    the migration (rounds, pages, downtime, total) and xl list of both hosts at the end of the run."""
    try:
        _check_outputs(json_out, csv_out)
        sc = _load(scenario, duration_ms, seed)
        d = _check_dom(sc, domain)
        hosts = [h.name for h in sc.hosts]
        if host_name not in hosts:
            raise unknown("HOST", host_name, hosts, what="host")
        if host_name == d.host:
            raise ScenarioError("HOST", f"domain {domain!r} is already on host {host_name!r}")
        if not 0 <= at_ms <= 3.6e6:
            raise ScenarioError("--at-ms", f"must be 0..3600000, got {at_ms:g}")
        sc = replace(sc, migrations=tuple(sc.migrations) + (
            {"domain": domain, "to": host_name, "at_ms": float(at_ms), "live": bool(live)},))
        system, _r, _mem = _built(sc)
        system.xl_changes.append((int(round(at_ms * 1e6)), f"migrate {domain} {host_name}", "command"))
        res = system.run()
        mrows = [x for x in getattr(res, "migration_rows", []) if x.get("domain") == domain]
        m = next(x for x in mrows if x["kind"] == "migration")
        gone = {(x.src.host.name, x.src.domid) for x in system.migrations if x.state == "done"}
        lists, lrows = _host_lists(system, gone)
        head = (f"migrate {domain} {d.host} -> {host_name} at {at_ms:g} ms ({'live' if live else 'non-live'}, "
                f"{m['policy']}): {m['state']}")
        if m["state"] == "done":
            head += (f"; rounds {m['rounds']}, pages {m['pages_sent']}, {m['bytes'] / 2**20:.2f} MiB, "
                     f"downtime {m['downtime_ms']:.3f} ms, total {m['total_ms']:.3f} ms")
        _emit(system, head + "\n" + lists, mrows + lrows, json_out, csv_out)
    except ScenarioError as e:
        _fail(e)


@app.command("save")
def save_cmd(scenario: str = typer.Argument(..., help="scenario TOML file"), domain: str = DOM,
             file: Path = typer.Argument(..., metavar="FILE", help="the save image to write"),
             at_ms: float = AT, rate_mbps: float = typer.Option(None, "--rate-mbps", help="rate the stream is "
                                                                "written at (default: the host's link rate)"),
             duration_ms: float = DUR, seed: int = SEED,
             json_out: Optional[Path] = JSON, csv_out: Optional[Path] = CSV):
    """xl save DOM FILE at --at-ms: the domain is suspended, its state streamed into FILE (non-live), and it
    is destroyed; prints the save and xl list."""
    try:
        _check_outputs(json_out, csv_out)
        sc = _load(scenario, duration_ms, seed)
        d = _check_dom(sc, domain)
        if not 0 <= at_ms <= 3.6e6:
            raise ScenarioError("--at-ms", f"must be 0..3600000, got {at_ms:g}")
        if not Path(file).parent.is_dir():
            raise ScenarioError("FILE", f"directory {str(Path(file).parent)!r} does not exist")
        mig, rate = _stream(sc, d, at_ms, rate_mbps)
        system, _r, _mem = _built(sc)
        system.xl_changes.append((int(round(at_ms * 1e6)), f"save {domain}", "command"))
        dr = system.domain(domain)
        system.advance(int(round(at_ms * 1e6)))
        dr.host.runner.sync()
        done = float(dr.os.units)
        for u in dr.domain.units:  # SHUTDOWN_suspend
            dr.host.runner.pause(u)
        system.advance(int(round(at_ms * 1e6)) + mig.out.total_ns)
        for u in dr.domain.units:  # the saved domain is destroyed once its image is written
            dr.host.runner.destroy_vcpu(u)
        dr.host.runner.sync()
        body = {"format": xlsave.MAGIC, "version": xlsave.VERSION, "pvsim_version": __version__,
                "models": "xl save: xl header + libxl image + migration stream v2 records (non-live)",
                "scenario": sc.name, "seed": sc.seed, "saved_at_ms": float(at_ms),
                "domain": d.model_dump(mode="json"), "pages": int(mig.mem.model.n_pages), "page_size": 4096,
                "stream_bytes": int(mig.out.bytes), "save_ms": mig.out.total_ns / 1e6, "rate_mbps": rate,
                "progress": {"units_done": done,
                             "budget_left": (dr.budget - done) if math.isfinite(dr.budget) else None}}
        size = xlsave.write(file, body)
        row = {"kind": "save", "domain": domain, "host": d.host, "file": str(file), "file_bytes": size,
               "at_ms": float(at_ms), "pages": body["pages"], "stream_bytes": body["stream_bytes"],
               "save_ms": body["save_ms"], "rate_mbps": rate, "units_done": done}
        lists, lrows = _host_lists(system, {(d.host, dr.domid)})
        head = (f"save {domain} -> {file} at {at_ms:g} ms: {row['pages']} pages, {row['stream_bytes'] / 2**20:.2f} "
                f"MiB through the stream at {rate:g} Mbit/s in {row['save_ms']:.3f} ms; image {size} bytes")
        _emit(system, head + "\n" + lists, [row] + lrows, json_out, csv_out)
    except ScenarioError as e:
        _fail(e)


@app.command("restore")
def restore_cmd(scenario: str = typer.Argument(..., help="scenario TOML file (holding the domain's host)"),
                file: Path = typer.Argument(..., metavar="FILE", help="a save image written by pvsim xl save"),
                at_ms: float = AT, rate_mbps: float = typer.Option(None, "--rate-mbps", help="rate the stream is "
                                                                   "read at (default: the host's link rate)"),
                duration_ms: float = DUR, seed: int = SEED,
                json_out: Optional[Path] = JSON, csv_out: Optional[Path] = CSV):
    """xl restore FILE at --at-ms: the domain of the image is created (replacing a scenario domain of the
    same name), paused until its stream is read back, then runs on from its saved progress; xl list at the end."""
    try:
        _check_outputs(json_out, csv_out)
        body = xlsave.read(file)
        sc = _load(scenario, duration_ms, seed)
        if not 0 <= at_ms <= 3.6e6:
            raise ScenarioError("--at-ms", f"must be 0..3600000, got {at_ms:g}")
        try:
            spec = DomainSpec(**body["domain"])
        except ValidationError as e:
            raise ScenarioError("FILE", f"the image's domain config is invalid: {e.errors()[0]['msg']}") from None
        if spec.host not in [h.name for h in sc.hosts]:
            raise ScenarioError("FILE", f"the image's domain runs on host {spec.host!r}, not in this scenario")
        same = [x.name for x in sc.domains].count(spec.name)
        sc = replace(sc, domains=tuple(spec if x.name == spec.name else x for x in sc.domains) + (() if same else (spec,)))
        mig, rate = _stream(sc, spec, at_ms, rate_mbps)
        system, _r, _mem = _built(sc)
        dr = system.domain(spec.name)
        left = body["progress"].get("budget_left")
        if left is not None and math.isfinite(dr.budget):
            dr.budget = max(0.0, float(left))
        r = dr.host.runner
        up = int(round(at_ms * 1e6)) + mig.out.total_ns
        r.at(0, lambda _r: [r.pause(u) for u in dr.domain.units])
        r.at(up, lambda _r: [r.unpause(u) for u in dr.domain.units])
        system.xl_changes.append((up, f"restore {spec.name} (from {at_ms:g} ms)", "command"))
        system.run()
        row = {"kind": "restore", "domain": spec.name, "host": spec.host, "file": str(file),
               "at_ms": float(at_ms), "running_from_ms": up / 1e6, "pages": body["pages"],
               "stream_bytes": body["stream_bytes"], "restore_ms": mig.out.total_ns / 1e6, "rate_mbps": rate,
               "units_done_at_save": body["progress"]["units_done"], "config": spec.model_dump(mode="json")}
        lists, lrows = _host_lists(system)
        head = (f"restore {spec.name} <- {file} at {at_ms:g} ms: {row['pages']} pages read in "
                f"{row['restore_ms']:.3f} ms, running from {up / 1e6:.3f} ms on {spec.host}")
        _emit(system, head + "\n" + lists, [row] + lrows, json_out, csv_out)
    except ScenarioError as e:
        _fail(e)


@app.command("remus")
def remus_cmd(scenario: Path = typer.Argument(..., help="scenario TOML with the primary's and the backup's hosts"),
              domain: str = typer.Argument(..., metavar="DOM", help="the protected domain"),
              host_name: str = typer.Argument(..., metavar="HOST", help="the backup host"),
              interval_ms: float = typer.Option(DEFAULT_INTERVAL_MS, "-i", "--interval-ms",
                                                help="checkpoint interval in ms (xl remus -i, default 200)"),
              colo: bool = typer.Option(False, "-c", "--colo", help="COLO (xl remus -c): lockstep, checkpoint on "
                                        "divergence; rows beside Remus's"),
              divergence: float = typer.Option(COLO_DIVERGENCE, "--divergence", help="COLO: per-packet chance the "
                                               "secondary's output differs [assumption]"),
              pps: float = typer.Option(20000.0, "--pps", help="the guest's outbound packets per second"),
              disk_mb_per_s: float = typer.Option(10.0, "--disk-mb-per-s", help="the guest's disk writes"),
              duration_ms: float = typer.Option(2000.0, "--duration-ms", help="protected run after the initial copy"),
              fail_at_ms: Optional[float] = typer.Option(None, "--fail-at-ms", help="crash the primary then"),
              curve: bool = typer.Option(False, "--curve", help="overhead for intervals 25, 50, 100, 200, 500 ms"),
              json_out: Optional[Path] = typer.Option(None, "--json"),
              csv_out: Optional[Path] = typer.Option(None, "--csv")):
    """xl remus [-i MS] [-c] SCENARIO DOM HOST: continuous checkpointing of DOM to the backup HOST (the same
    model as ``pvsim remus``): added latency and throughput loss, or the failover at --fail-at-ms."""
    try:
        hacli.run_remus(scenario, domain, host_name, interval_ms, colo, divergence, pps, disk_mb_per_s, duration_ms,
                        fail_at_ms, curve, json_out, csv_out, fields={"domain": "DOM", "to": "HOST"},
                        title="xl remus")
    except ScenarioError as e:
        _fail(e)


def main():  # pragma: no cover - for `python -m pvsim.sched.cli`
    try:
        app()
    except ScenarioError as e:
        print(f"pvsim: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
