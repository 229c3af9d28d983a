"""xl-style views and the `pvsim xl` commands."""

import re

import pytest
from typer.testing import CliRunner

from pvsim.core.engine import Engine
from pvsim.sched import HostRunner, make_scheduler
from pvsim.sched.workloads import CpuHog, IoBound
from pvsim.sched.xl import cpulist, xl_list, xl_sched_credit, xl_vcpu_list
from pvsim.xl import app

MS = 1_000_000

SCEN = """
name = "t"
seed = 1
[host]
pcpus = 2
memory_mib = 4096
[scheduler]
name = "{sched}"
[run]
duration_ms = 300
[[domains]]
name = "hog1"
mode = "pv"
workload = "cpu-int"
vcpus = 1
memory_mib = 512
[[domains]]
name = "hog2"
mode = "pv"
workload = "cpu-int"
vcpus = 2
memory_mib = 512
weight = 512
"""


def test_cpulist_format():
    assert cpulist(None, 4) == "all"
    assert cpulist({0, 1, 2, 3}, 4) == "all"
    assert cpulist({0, 1, 2, 3, 6}, 8) == "0-3,6"
    assert cpulist({5}, 8) == "5"
    assert cpulist(set(), 8) == "none"


def test_views_format_like_xl():
    e = Engine()
    r = HostRunner(e, make_scheduler("credit"), 4)
    r.add_vcpu(0, 0, IoBound(MS, 10 * MS), name="Domain-0.0")
    r.add_vcpu(3, 0, CpuHog(), affinity={2, 3}, name="guest1.0", weight=512, cap=150)
    r.add_vcpu(4, 0, CpuHog(until_ns=100 * MS), name="guest2.0")
    r.start()
    e.run(1000 * MS)
    lst = xl_list(r, {0: 4096, 3: 1024}).splitlines()
    assert lst[0] == "Name                                        ID   Mem VCPUs\tState\tTime(s)"
    assert re.fullmatch(r"guest1\s{34}\s+3\s+1024\s+1     r-----\s+1\.0", lst[2])
    assert lst[3].startswith("guest2") and "---s--" in lst[3] and lst[3].endswith("0.1")
    vl = xl_vcpu_list(r).splitlines()
    assert vl[0].split() == ["Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Affinity", "(Hard", "/", "Soft)"]
    assert re.fullmatch(r"guest1\s+3\s+0\s+[23]\s+r--\s+1\.0  2-3 / all", vl[2])
    assert re.fullmatch(r"guest2\s+4\s+0\s+-\s+--p\s+0\.1  all / all", vl[3])
    sc = xl_sched_credit(r).splitlines()
    assert sc[0] == "Cpupool Pool-0: tslice=30ms ratelimit=1000us migration-delay=0us"
    assert sc[3] == f"{'guest1':<33s} {3:4d} {512:6d} {150:4d}"


@pytest.fixture
def scen(tmp_path):
    def make(sched="credit"):
        p = tmp_path / f"{sched}.toml"
        p.write_text(SCEN.format(sched=sched))
        return str(p)

    return make


def test_xl_help_lists_commands():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for c in ("list", "vcpu-list", "vcpu-pin", "sched-credit", "sched-credit2", "sched-rtds"):
        assert c in res.output


def test_xl_sched_credit_sets_weight_and_prints_table(scen):
    res = CliRunner().invoke(app, ["sched-credit", "--scenario", scen(), "-d", "hog1", "-w", "1024", "-c", "40",
                                   "--at-ms", "100", "--shares"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if not ln.startswith("# ")]  # after the view note
    assert lines[0].startswith("Cpupool Pool-0: tslice=30ms")
    assert re.match(r"hog1\s+\d+\s+1024\s+40", lines[2])
    assert "CPU%" in res.output


def test_xl_sched_credit_global_params(scen):
    res = CliRunner().invoke(app, ["sched-credit", "--scenario", scen(), "-s", "-t", "10", "-r", "500"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[1] == "Cpupool Pool-0: tslice=10ms ratelimit=500us migration-delay=0us"


def test_xl_errors_exit_2_with_field(scen):
    res = CliRunner().invoke(app, ["sched-credit", "--scenario", scen(), "-d", "hog1", "-w", "0"])
    assert res.exit_code == 2 and "weight: must be 1..65535, got 0" in res.output
    res = CliRunner().invoke(app, ["sched-credit2", "--scenario", scen("credit")])
    assert res.exit_code == 2 and "not 'credit2'" in res.output
    res = CliRunner().invoke(app, ["sched-credit", "--scenario", scen(), "-d", "nosuch", "-w", "5"])
    assert res.exit_code == 2 and "no domain" in res.output


def test_xl_vcpu_pin_and_lists(scen):
    res = CliRunner().invoke(app, ["vcpu-pin", "--scenario", scen(), "hog2", "all", "1"])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if line.startswith("hog2")]
    assert len(rows) == 2 and all(row.endswith("1 / all") for row in rows)
    res = CliRunner().invoke(app, ["list", "--scenario", scen("credit2")])
    assert res.exit_code == 0 and "hog2" in res.output
    res = CliRunner().invoke(app, ["vcpu-list", "--scenario", scen("credit2"), "hog1"])
    assert res.exit_code == 0 and "hog2" not in res.output


def test_xl_sched_rtds(scen):
    res = CliRunner().invoke(app, ["sched-rtds", "--scenario", scen("rtds"), "-d", "hog2", "-v", "all",
                                   "-p", "20000", "-b", "5000", "-e", "0"])
    assert res.exit_code == 0, res.output
    rows = [line.split() for line in res.output.splitlines() if line.startswith("hog2")]
    assert rows and all(r[3:6] == ["20000", "5000", "0"] for r in rows)
