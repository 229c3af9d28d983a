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

Command and option names follow ``tools/xl/xl_cmdtable.c``.
"""

from __future__ import annotations

import sys

import typer

from pvsim.core.errors import ScenarioError
from pvsim.scenario import Scenario, parse_cpulist
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

app = typer.Typer(
    help="xl-style scheduler controls (sched-credit, sched-credit2, sched-rtds, vcpu-pin) and views "
         "(list, vcpu-list) of a simulated run of a scenario file.",
    no_args_is_help=True,
    add_completion=False,
)

SCEN = typer.Option(..., "--scenario", "-f", help="scenario TOML file to simulate")
DUR = typer.Option(None, "--duration-ms", help="override the scenario's run length (ms)")
SEED = typer.Option(None, "--seed", help="override the scenario's seed")
AT = typer.Option(0.0, "--at-ms", help="simulated time (ms) at which the change is applied")
SHARES = typer.Option(False, "--shares", help="also print CPU share, steal, switches and wake latency per domain")


def _fail(e: Exception):
    typer.echo(f"pvsim: error: {e}", err=True)
    raise typer.Exit(2)


def _build(scenario: str, duration_ms, seed):
    sc = Scenario.from_toml(scenario)
    if duration_ms is not None:
        sc = sc.with_run(duration_ms=float(duration_ms), ops=None, warmup_ms=0.0)
    if seed is not None:
        sc = sc.with_seed(int(seed))
    system = build(sc)
    r = system.runner
    mem = {}
    for d in system.hosts[0].domains:
        domid = d.domain.domid
        if domid in r.domains:
            r.domains[domid].name = d.spec.name
        mem[domid] = d.spec.memory_mib
    return system, r, mem


def _domid(r, dom: str) -> int:
    for domid, d in r.domains.items():
        if d.name == dom or str(domid) == dom:
            return domid
    raise ScenarioError("domain", f"no domain {dom!r}; have {', '.join(d.name for d in r.domains.values())}")


def _need(r, name: str):
    if r.sched.name != name:
        raise ScenarioError("scheduler", f"cpupool Pool-0 uses scheduler {r.sched.name!r}, not {name!r}")


def _at(r, at_ms: float, fn):
    r.at(int(round(at_ms * 1_000_000)), lambda _r: fn())


def _finish(system, r, text_fn, shares: bool):
    system.run()
    typer.echo(text_fn())
    if shares:
        typer.echo("")
        typer.echo(share_table(r))


@app.command("list")
def list_cmd(domains: list[str] = typer.Argument(None, help="domains (names or ids); default all"),
             scenario: str = SCEN, duration_ms: float = DUR, seed: int = SEED, shares: bool = SHARES):
    """xl list: domains, memory, vCPUs, state and CPU time at the end of the run."""

    try:
        system, r, mem = _build(scenario, duration_ms, seed)
        ids = {_domid(r, d) for d in domains} if domains else None
        _finish(system, r, lambda: xl_list(r, mem, ids), shares)
    except ScenarioError as e:
        _fail(e)


@app.command("vcpu-list")
def vcpu_list_cmd(domains: list[str] = typer.Argument(None, help="domains (names or ids); default all"),
                  scenario: str = SCEN, duration_ms: float = DUR, seed: int = SEED, shares: bool = SHARES):
    """xl vcpu-list: per-vCPU pCPU, state, CPU time and hard / soft affinity."""

    try:
        system, r, _mem = _build(scenario, duration_ms, seed)
        ids = {_domid(r, d) for d in domains} if domains else None
        _finish(system, r, lambda: xl_vcpu_list(r, ids), shares)
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
                 shares: bool = SHARES):
    """xl vcpu-pin DOM VCPU|all HARD [SOFT] at --at-ms, then print xl vcpu-list."""

    try:
        system, r, _mem = _build(scenario, duration_ms, seed)
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

        _at(r, at_ms, apply)
        _finish(system, r, lambda: xl_vcpu_list(r, {domid}), shares)
    except (ScenarioError, ValueError) as e:
        _fail(e)


def _sched_dom_cmd(name, scenario, duration_ms, seed, at_ms, shares, domain, dom_params, glob_params, view):
    try:
        system, r, _mem = _build(scenario, duration_ms, seed)
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
                _at(r, at_ms, lambda: r.adjust(domid, **kw, **dom_params))
        elif dom_params and any(k != "_vcpu" for k in dom_params):
            raise ScenarioError(f"sched-{name}", "-w/-c/-p/-b/-e need -d DOMAIN")
        if glob_params:

            merged = {**r.sched.params, **glob_params}
            validate_sched_params(name, {k: v for k, v in merged.items()}, f"sched-{name}", n_pcpus=r.n_pcpus,
                                  defaults=False)
            _at(r, at_ms, lambda: r.adjust_global(**glob_params))
        _finish(system, r, lambda: view(r, ids), shares)
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
                     duration_ms: float = DUR, seed: int = SEED, at_ms: float = AT, shares: bool = SHARES):
    """xl sched-credit [-d DOM [-w W] [-c CAP]] [-s [-t TSLICE] [-r RATELIMIT] [-m DELAY]]."""

    dp = {k: v for k, v in (("weight", weight), ("cap", cap)) if v is not None}
    gp = {k: v for k, v in (("tslice_ms", tslice_ms), ("ratelimit_us", ratelimit_us),
                            ("vcpu_migr_delay_us", migr_delay_us)) if v is not None}
    if gp and not schedparam:
        _fail(ScenarioError("sched-credit", "-t/-r/-m need -s"))
    _sched_dom_cmd("credit", scenario, duration_ms, seed, at_ms, shares, domain, dp, gp, xl_sched_credit)


@app.command("sched-credit2")
def sched_credit2_cmd(scenario: str = SCEN,
                      domain: str = typer.Option(None, "-d", "--domain", help="domain name or id"),
                      weight: int = typer.Option(None, "-w", "--weight", help="weight 1..65535"),
                      cap: int = typer.Option(None, "-c", "--cap", help="cap in % of one pCPU (0 = none)"),
                      schedparam: bool = typer.Option(False, "-s", "--schedparam", help="set pool parameters"),
                      ratelimit_us: int = typer.Option(None, "-r", "--ratelimit_us", help="ratelimit (us), with -s"),
                      duration_ms: float = DUR, seed: int = SEED, at_ms: float = AT, shares: bool = SHARES):
    """xl sched-credit2 [-d DOM [-w W] [-c CAP]] [-s [-r RATELIMIT]]."""

    dp = {k: v for k, v in (("weight", weight), ("cap", cap)) if v is not None}
    gp = {"ratelimit_us": ratelimit_us} if ratelimit_us is not None else {}
    if gp and not schedparam:
        _fail(ScenarioError("sched-credit2", "-r needs -s"))
    _sched_dom_cmd("credit2", scenario, duration_ms, seed, at_ms, shares, domain, dp, gp, xl_sched_credit2)


@app.command("sched-rtds")
def sched_rtds_cmd(scenario: str = SCEN,
                   domain: str = typer.Option(None, "-d", "--domain", help="domain name or id"),
                   vcpu: str = typer.Option(None, "-v", "--vcpuid", help="vCPU number or 'all'"),
                   period_us: int = typer.Option(None, "-p", "--period", help="period (us)"),
                   budget_us: int = typer.Option(None, "-b", "--budget", help="budget (us)"),
                   extratime: int = typer.Option(None, "-e", "--extratime", help="extratime 0|1"),
                   duration_ms: float = DUR, seed: int = SEED, at_ms: float = AT, shares: bool = SHARES):
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
    _sched_dom_cmd("rtds", scenario, duration_ms, seed, at_ms, shares, domain, dp, {}, xl_sched_rtds)


def main():  # pragma: no cover - for `python -m pvsim.sched.cli`
    try:
        app()
    except ScenarioError as e:
        print(f"pvsim: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
