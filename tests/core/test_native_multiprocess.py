"""A native multi-process baseline (issue 12 item 9): several workloads as processes of one native
kernel -- one scheduler (the host's dispatcher), one disk queue, per-process rows, process switches
priced natively with their cache/TLB footprints."""

import subprocess
import sys
from pathlib import Path

import pytest

from pvsim.core.errors import ScenarioError
from pvsim.core.profile import load_profile
from pvsim.scenario import Scenario
from pvsim.system import build

ROOT = Path(__file__).resolve().parents[2]


def _sc(processes, pcpus=1, mode="native", duration=200, extra=()):
    return Scenario.from_dict({
        "name": "nmp", "seed": 7,
        "host": {"pcpus": pcpus, "memory_mib": 4096, "profile": "xeon-2003"},
        "scheduler": {"name": "credit"},
        "run": {"duration_ms": duration},
        "domains": [{"name": "linux", "mode": mode, "memory_mib": 3072, "processes": processes}, *extra],
    })


def test_processes_share_the_kernel_scheduler_and_the_disk_queue():
    sc = _sc([{"name": "db", "workload": "oltp"}, {"name": "io", "workload": "fio-rand4k"},
              {"name": "hog", "workload": "cpu-int"}])
    assert [d.name for d in sc.domains] == ["linux.db", "linux.io", "linux.hog"]
    assert all(d.process_of == "linux" for d in sc.domains)
    assert [d.name for d in sc.processes_of("linux")] == ["linux.db", "linux.io", "linux.hog"]
    system = build(sc)
    h = system.hosts[0]
    assert h.control is None and h.native_kernel  # no hypervisor, no Domain-0: one OS
    assert len({id(dr.disk_port) for dr in h.domains}) == 1 and h.domains[0].disk_port is h.disk
    res = system.run()
    rows = {r["domain"]: r for r in res.rows}
    assert set(rows) == {"linux.db", "linux.io", "linux.hog"}
    assert rows["linux.io"]["value"] > 0 and rows["linux.hog"]["value"] > 0
    # both disk users queue on the one disk (a rotational disk: 16 fio jobs ahead of the database's
    # reads leave it waiting): both wait for I/O, and the disk served them
    assert h.disk.completed > 0
    assert all(rows[d]["breakdown_ns"].get("idle.io_wait", 0) > 0 for d in ("linux.db", "linux.io"))
    # one pCPU for three processes: they wait for each other in the one scheduler
    assert rows["linux.hog"]["breakdown_ns"].get("sched.wait", 0) > 0
    # process switches are the native kernel's, with their footprints as their own causes
    bd = rows["linux.hog"]["breakdown_ns"]
    assert bd.get("kernel.process_switch", 0) > 0 and "world_switch.vcpu" not in bd
    assert bd.get("cache.refill", 0) > 0


def test_process_switch_is_priced_from_the_native_constants():
    sc = _sc([{"name": "a", "workload": "sched.cpu-hog"}, {"name": "b", "workload": "sched.cpu-hog"}], duration=300)
    system = build(sc)
    h = system.hosts[0]
    prof = load_profile("xeon-2003")
    full = round(prof.ns("native.context_switch_cycles"))
    res = system.run()
    rows = {r["domain"]: r for r in res.rows}
    # the synthetic hogs declare no footprint: the switch time is process switches only, each
    # native.context_switch_cycles (1848 cycles at 2.4 GHz = 770 ns)
    assert full == 770
    total = sum(h.switch_ns_of(dr.domid) for dr in h.domains)
    h.runner.sync()
    n = sum(u.ctx_in for u in h.runner.units)  # every switch-in is a full one: the hogs never idle
    assert n >= 10 and sum(r["counts"]["sched.context_switches"] for r in rows.values()) >= 8
    assert total == n * full
    assert all("cache.refill" not in r["breakdown_ns"] for r in rows.values())


def test_bad_processes_are_one_line_errors():
    with pytest.raises(ScenarioError, match=r"domains\[0\]\.processes"):
        _sc([{"name": "a", "workload": "cpu-int"}], mode="pv")
    with pytest.raises(ScenarioError, match=r"domains\[0\]\.processes\[1\]\.workload"):
        _sc([{"name": "a", "workload": "cpu-int"}, {"name": "b", "workload": "no-such"}])
    with pytest.raises(ScenarioError, match="only domain"):
        _sc([{"name": "a", "workload": "cpu-int"}], extra=({"name": "other", "mode": "native"},))
    with pytest.raises(ScenarioError, match="unique"):
        _sc([{"name": "a", "workload": "cpu-int"}, {"name": "a", "workload": "cpu-int"}])


def test_the_example_scenario_runs_from_the_cli(tmp_path):
    out = tmp_path / "nmp.json"
    r = subprocess.run([sys.executable, "-c", "from pvsim.cli import main; main()", "run",
                        str(ROOT / "examples" / "native-multiprocess.toml"), "--json", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "linux.build" in out.read_text()


def test_a_bad_process_in_a_file_is_exit_2_and_one_line(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[host]\npcpus = 1\n[[domains]]\nname = "x"\nmode = "pv"\nprocesses = [{ name = "a", workload = "cpu-int" }]\n')
    r = subprocess.run([sys.executable, "-c", "from pvsim.cli import main; main()", "run", str(f)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "processes" in r.stderr
