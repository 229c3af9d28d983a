"""Issue 13's last trace pieces: the hypercalls of pre-priced steps, migration records, multi-host
traces (one xentrace file per host, one Perfetto file with a process per host)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from hypercalls.trace import (
    PVSIM_TRC_CSCHED_ACCT_CREDIT,
    PVSIM_TRC_CSCHED_BURN_CREDIT,
    TRC_CSCHED2_CREDIT_BURN,
    TRC_SCHED_CLASS,
    TRC_SCHED_MIN,
)
from pvsim.results import Outputs
from pvsim.scenario import Scenario
from pvsim.sched.credit2 import CSCHED2_CARRYOVER_MAX, CSCHED2_CREDIT_INIT, CSCHED2_CREDIT_MIN
from pvsim.system import build
from pvsim.trace.session import Tracing, host_path
from pvsim.trace.xenalyze import Summary
from pvsim.trace.xentrace import mask_keeps, read_trace

ROOT = Path(__file__).resolve().parents[2]
MIG = ROOT / "examples" / "migrate_in_run.toml"


def _trace(sc, tmp_path, perfetto=False):
    system = build(sc)
    xt = tmp_path / "t.xentrace"
    pf = tmp_path / "t.json" if perfetto else None
    with Outputs() as outs:
        tr = Tracing(system, outs, xt, pf)
        res = system.run()
        tr.close()
    return system, res, xt, pf


def _xenalyze_calls(summary: dict, domid: int) -> dict:
    dom = next(d for d in summary["domains"] if d["domain"] == domid)
    out = collections.Counter()
    for v in dom["vcpus"]:
        for h in v["hypercalls"]:
            out[h["name"]] += h["count"]
    return dict(out)


def _meter_calls(dr) -> dict:
    out = collections.Counter()
    for v in dr.os.vcpus:
        for k, c in v.meter.counts.items():
            if k.startswith("hypercall.") and round(c):
                out[k[10:]] += int(round(c))
    return dict(out)


@pytest.mark.parametrize("dispatcher", ["python", "compiled"])
def test_priced_step_hypercalls_equal_the_meter_program(tmp_path, dispatcher):
    """lmbench.fork in a timed run is a program (its op mixes priced, run as counters)."""
    sc = Scenario.from_dict({"name": "hc", "seed": 1, "host": {"pcpus": 2},
                             "scheduler": {"name": "credit", "dispatcher": dispatcher}, "run": {"duration_ms": 30},
                             "domains": [{"name": "a", "mode": "pv", "workload": "lmbench.fork"}]})
    system, _res, xt, _ = _trace(sc, tmp_path)
    s = Summary(read_trace(xt)).to_dict()
    a = _meter_calls(system.domain("a"))
    assert _xenalyze_calls(s, system.domain("a").domid) == a
    total_meter = sum(sum(_meter_calls(dr).values()) for dr in system.domains)
    total_trace = sum(sum(_xenalyze_calls(s, dr.domid).values()) for dr in system.domains)
    # Domain-0's idle-path calls made while no vCPU of it is current on the pCPU are in the file but
    # unattributed (as xenalyze leaves them): nothing is missing
    assert total_trace + s["unattributed_records"] >= total_meter
    assert a.get("mmuext_op", 0) > 100 and a.get("update_va_mapping", 0) > 100  # priced, not dispatched


def test_priced_step_hypercalls_equal_the_meter_full_os(tmp_path):
    """An ops run takes the full guest OS: its priced steps charge (and trace) per step."""
    sc = Scenario.from_dict({"name": "hc", "seed": 1, "host": {"pcpus": 1}, "scheduler": {"dispatcher": "python"},
                             "run": {"ops": 40}, "domains": [{"name": "a", "mode": "pv", "workload": "lmbench.fork"}]})
    system, _res, xt, _ = _trace(sc, tmp_path)
    s = Summary(read_trace(xt)).to_dict()
    dr = system.domain("a")
    meter = _meter_calls(dr)
    got = _xenalyze_calls(s, dr.domain.domid)
    assert meter.get("mmuext_op", 0) >= 40
    for name, n in meter.items():  # within one per name (fractions carried between steps)
        assert abs(got.get(name, 0) - n) <= 1, (name, got.get(name), n)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mig")
    sc = Scenario.from_toml(MIG)
    return (*_trace(sc, tmp, perfetto=True), tmp)


def test_multi_host_writes_one_xentrace_per_host(migrated):
    system, _res, xt, _pf, tmp = migrated
    files = sorted(p.name for p in tmp.iterdir())
    assert files == ["t.h1.xentrace", "t.h2.xentrace", "t.json"]
    assert host_path(xt, "h1").name == "t.h1.xentrace"
    for h in system.hosts:
        recs = read_trace(host_path(xt, h.name))
        assert recs and {r.cpu for r in recs} <= set(range(h.spec.pcpus))  # numbered from 0 per host


def test_migration_records_match_the_run(migrated):
    system, res, xt, _pf, _tmp = migrated
    s = Summary(read_trace(host_path(xt, "h1")))
    d = s.to_dict()
    (m,) = d["migrations"]
    row = next(r for r in res.migration_rows if r["kind"] == "migration")
    rounds = [r for r in res.migration_rows if r["kind"] == "round"]
    assert m["rounds"] == row["rounds"] == len(rounds)
    assert [r["pages"] for r in m["per_round"]] == [r["pages"] for r in rounds]
    assert [r["dirty_after"] for r in m["per_round"]] == [r["dirty_after"] for r in rounds]
    assert m["downtime_ns"] == pytest.approx(row["downtime_ms"] * 1e6, rel=0.02)
    assert "Migration of domain" in s.text()


def test_perfetto_has_a_process_per_host_and_migration_slices(migrated):
    system, res, _xt, pf, _tmp = migrated
    doc = json.loads(pf.read_text())
    ev = doc["traceEvents"]
    procs = {e["args"]["name"] for e in ev if e["name"] == "process_name"}
    assert {"Xen h1 (pCPUs)", "Xen h2 (pCPUs)"} <= procs
    assert any("on h2" in p and "app" in p for p in procs)  # the receiving copy, named
    threads = collections.Counter((e["pid"], e["tid"]) for e in ev if e["name"] == "thread_name")
    pcpu_threads = {e["args"]["name"] for e in ev if e["name"] == "thread_name" and e["pid"] % (1 << 16) == 0}
    assert len(pcpu_threads) == 2 and sum(1 for (pid, _t) in threads if pid % (1 << 16) == 0) == 4
    rounds = [e for e in ev if e.get("cat") == "migration" and e["ph"] == "X"]
    n = sum(1 for r in res.migration_rows if r["kind"] == "round")
    assert len(rounds) == n and all(e["dur"] > 0 for e in rounds)
    dirty = [e for e in ev if e["ph"] == "C" and e["name"] == "migration: dirty pages"]
    assert len(dirty) == n and dirty[-1]["args"]["dirty"] == 0


def _credit2(dispatcher):
    return Scenario.from_dict({"name": "c2", "seed": 2, "host": {"pcpus": 1},
                               "scheduler": {"name": "credit2", "dispatcher": dispatcher}, "run": {"duration_ms": 40},
                               "domains": [{"name": "a", "mode": "pv", "workload": "cpu-int", "weight": 512},
                                           {"name": "b", "mode": "pv", "workload": "cpu-int"}]})


def test_credit2_credit_in_xentrace_and_perfetto(tmp_path):
    """TRC_CSCHED2_CREDIT_BURN carries each vCPU's credit as Xen's burn_credits() does; the Perfetto
    file draws it as a counter per vCPU; both dispatchers write the same records."""



    seqs = {}
    for disp in ("python", "compiled"):
        d = tmp_path / disp
        d.mkdir()
        system, _res, xt, pf = _trace(_credit2(disp), d, perfetto=True)
        burns = [r for r in read_trace(xt) if r.event == TRC_CSCHED2_CREDIT_BURN]
        assert len(burns) > 10
        for r in burns:
            credit = r.words[1] - (1 << 32) if r.words[1] >= 1 << 31 else r.words[1]
            assert CSCHED2_CREDIT_MIN <= credit <= CSCHED2_CREDIT_INIT + CSCHED2_CARRYOVER_MAX
            assert r.words[2] == 1 << 31  # no cap: INT_MIN
        seqs[disp] = [(r.tsc, r.words) for r in burns]
        ev = json.loads(pf.read_text())["traceEvents"]
        counters = {(e["pid"], e["name"]) for e in ev if e["ph"] == "C" and e["name"].startswith("credit2 credit")}
        doms = {system.domain(n).domid for n in ("a", "b")}
        assert {p - 1 for p, _n in counters} >= doms
    assert seqs["python"] == seqs["compiled"]


C1_EVENTS = (PVSIM_TRC_CSCHED_ACCT_CREDIT, PVSIM_TRC_CSCHED_BURN_CREDIT)


def _s32(w: int) -> int:
    return w - (1 << 32) if w >= 1 << 31 else w


def _credit1(dispatcher):
    """Three uncapped CPU hogs of unequal weight on one pCPU (no parks), 200 ms: six accounting passes."""
    return Scenario.from_dict({"name": "c1", "seed": 3, "host": {"pcpus": 1},
                               "scheduler": {"name": "credit", "dispatcher": dispatcher},
                               "run": {"duration_ms": 200},
                               "domains": [{"name": "a", "mode": "pv", "workload": "cpu-int", "weight": 512},
                                           {"name": "b", "mode": "pv", "workload": "cpu-int", "vcpus": 2},
                                           {"name": "c", "mode": "pv", "workload": "cpu-int", "weight": 128}]})


def _traced_credit1(dispatcher, tmp_path, hook=None):
    system = build(_credit1(dispatcher))
    if hook is not None:
        system.hosts[0].runner.sched.acct_hooks.append(hook)
    bus = []
    system.engine.subscribe(lambda r: bus.append((r.time_ns, r.pcpu, r.event, tuple(r.words))))
    d = tmp_path / dispatcher
    d.mkdir()
    xt, pf = d / "t.xentrace", d / "t.json"
    with Outputs() as outs:
        tr = Tracing(system, outs, xt, pf)
        res = system.run()
        tr.close()
    return system, res, bus, xt, pf


def test_credit1_credit_records_are_the_schedulers_state_at_acct(tmp_path):
    """PVSIM_TRC_CSCHED_ACCT_CREDIT: one record per vCPU each csched_acct pass credits, carrying the
    credit and priority the pass left (read from the scheduler in an accounting hook)."""
    seen = []

    def hook(sched, info):
        seen.append((info["now"], {(u.dom.domid, u.vcpu_id): (int(sched.credit[u.uid]), int(sched.pri[u.uid]),
                                                               bool(sched.flags[u.uid] & 1))
                                   for u in sched.units}))

    system, _res, bus, xt, _pf = _traced_credit1("python", tmp_path, hook)
    assert len(seen) >= 5
    acct = collections.defaultdict(dict)
    for t, _cpu, ev, w in bus:
        if ev == PVSIM_TRC_CSCHED_ACCT_CREDIT:
            assert (w[0], w[1]) not in acct[t]  # one record per vCPU per pass
            acct[t][(w[0], w[1])] = (_s32(w[2]), _s32(w[3]))
    assert sorted(acct) == [t for t, _ in seen]
    guests = {(system.domain(n).domid, v) for n, nv in (("a", 1), ("b", 2), ("c", 1)) for v in range(nv)}
    n_full = 0
    for t, state in seen:
        got = acct[t]
        assert set(got) <= set(state)
        for key, (credit, pri) in got.items():
            assert (credit, pri) == state[key][:2], f"{key} at {t}"
        assert {k for k, s in state.items() if s[2]} <= set(got)  # still active -> it was credited
        n_full += set(got) >= guests
    assert n_full >= 1  # all four hogs credited in a pass at least once
    # the xentrace file carries the same records, in credit1's scheduler-class space
    recs = [(_s32(r.words[2]), r.words[:2]) for r in read_trace(xt) if r.event == PVSIM_TRC_CSCHED_ACCT_CREDIT]
    assert recs == [(_s32(w[2]), w[:2]) for _t, _c, ev, w in bus if ev == PVSIM_TRC_CSCHED_ACCT_CREDIT]
    burns = [w for _t, _c, ev, w in bus if ev == PVSIM_TRC_CSCHED_BURN_CREDIT]
    assert len(burns) > 20 and all(w[3] > 0 for w in burns)


def test_credit1_credit_counter_per_vcpu_in_perfetto(tmp_path):
    """The Perfetto file has a ``credit1 credit v<N>`` counter per guest vCPU, in its domain's
    process, whose values are the records' credits in order."""
    system, _res, bus, _xt, pf = _traced_credit1("python", tmp_path)
    ev = json.loads(pf.read_text())["traceEvents"]
    counters = collections.defaultdict(list)
    for e in ev:
        if e["ph"] == "C" and e["name"].startswith("credit1 credit v"):
            counters[(e["pid"] - 1, int(e["name"].rsplit("v", 1)[1]))].append(e["args"]["credit"])
    want = collections.defaultdict(list)
    for _t, _c, e, w in bus:
        if e in C1_EVENTS:
            want[(w[0], w[1])].append(_s32(w[2]))
    guests = {(system.domain(n).domid, v) for n, nv in (("a", 1), ("b", 2), ("c", 1)) for v in range(nv)}
    assert set(counters) >= guests
    assert dict(counters) == dict(want)
    assert any(c < 0 for k in guests for c in counters[k])  # the hogs go OVER between passes


def test_credit1_credit_records_same_from_both_dispatchers_and_change_nothing(tmp_path):
    out = {}
    for disp in ("python", "compiled"):
        _system, res, bus, xt, _pf = _traced_credit1(disp, tmp_path)
        out[disp] = ([b for b in bus if b[2] in C1_EVENTS], res.rows, read_trace(xt))
        assert (type(_system.hosts[0].runner).__name__ == "CompiledRunner") == (disp == "compiled")
    assert len(out["python"][0]) > 20
    assert out["python"][0] == out["compiled"][0]
    for disp in ("python", "compiled"):  # the same rows untraced
        assert build(_credit1(disp)).run().rows == out[disp][1]
    recs = out["compiled"][2]
    # xenalyze passes over them: the summary is the same without them, but for the scheduler class's
    # log volume (bytes per class and pCPU, as xenalyze's), which holds exactly their bytes
    mine = [r for r in recs if r.event in C1_EVENTS]
    full, without = Summary(recs).to_dict(), Summary([r for r in recs if r.event not in C1_EVENTS]).to_dict()
    vol_full, vol_without = full.pop("log_volume"), without.pop("log_volume")
    assert full == without
    assert vol_full["0"]["sched"] - vol_without["0"]["sched"] == sum(4 + 8 + 4 * len(r.words) for r in mine)
    assert {c: {k: v for k, v in d.items() if k != "sched"} for c, d in vol_full.items()} == \
        {c: {k: v for k, v in d.items() if k != "sched"} for c, d in vol_without.items()}


def test_credit1_credit_records_follow_the_class_mask():
    for ev in C1_EVENTS:
        assert ev & 0x0FFFF000 == TRC_SCHED_CLASS
        assert mask_keeps(0x0002F000, ev) and mask_keeps(TRC_SCHED_CLASS, ev)
        assert not mask_keeps(TRC_SCHED_MIN, ev) and not mask_keeps(0x0010F000, ev)
