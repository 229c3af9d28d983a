"""xentrace files, the Perfetto timeline and the xenalyze summary of a traced run."""

import json
import struct
from pathlib import Path

import pytest
import tomllib

from hypercalls.trace import (
    TRC_ALL,
    TRC_SCHED,
    TRC_SCHED_MIN,
    TRC_SCHED_RUNSTATE_CHANGE,
    TRC_SCHED_SWITCH,
    TRC_SCHED_WAKE,
    TRC_TRACE_CPU_CHANGE,
)
from pvsim.core.engine import TraceRecord
from pvsim.core.errors import ScenarioError
from pvsim.results import Outputs
from pvsim.scenario import Scenario
from pvsim.system import build
from pvsim.trace.session import Tracing
from pvsim.trace.xenalyze import Summary
from pvsim.trace.xentrace import XentraceWriter, encode, mask_keeps, parse_mask, read_trace

ROOT = Path(__file__).resolve().parents[2]
CONS = ROOT / "examples" / "consolidation.toml"


def _scenario(dispatcher="compiled", ms=300.0):
    data = tomllib.loads(CONS.read_text())
    data["scheduler"]["dispatcher"] = dispatcher
    data["run"] = {"duration_ms": ms}
    for t in data["timeline"]:
        t["at_ms"] = ms / 2
    return Scenario.from_dict(data, name="consolidation", base_dir=CONS.parent)


def _traced(tmp_path, dispatcher="compiled", mask=None):
    system = build(_scenario(dispatcher))
    xt, pf = tmp_path / "t.xentrace", tmp_path / "t.json"
    with Outputs() as outs:
        tr = Tracing(system, outs, xt, pf, mask)
        res = system.run()
        tr.close()
    return res, xt, pf


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    return _traced(tmp_path_factory.mktemp("trace"))


def test_record_encoding_is_t_rec():
    b = encode(TRC_SCHED_SWITCH, 0x1_0000_0002, (1, 2, 3, 4))
    hdr, tsc = struct.unpack_from("<IQ", b)
    assert hdr == TRC_SCHED_SWITCH | (4 << 28) | (1 << 31)
    assert tsc == 0x1_0000_0002 and len(b) == 4 + 8 + 16
    assert encode(TRC_TRACE_CPU_CHANGE, None, (3, 100)) == struct.pack("<III", TRC_TRACE_CPU_CHANGE | (2 << 28), 3, 100)
    with pytest.raises(ValueError):
        encode(TRC_SCHED_SWITCH, 0, tuple(range(8)))


def test_class_mask_is_xens():
    rs = TRC_SCHED_RUNSTATE_CHANGE | (1 << 8)
    assert mask_keeps(TRC_ALL, rs) and mask_keeps(TRC_SCHED, rs) and mask_keeps(TRC_SCHED_MIN, rs)
    assert not mask_keeps(TRC_SCHED_MIN, TRC_SCHED_WAKE)  # subclass 8 is not in 0x00021000
    assert not mask_keeps(0x0010F000, rs)  # the memory class
    assert parse_mask("0x0002f000") == TRC_SCHED and parse_mask(None) == TRC_ALL
    with pytest.raises(ScenarioError, match="--trace-mask"):
        parse_mask("sched")


def test_chunks_per_pcpu_and_merge(tmp_path):
    p = tmp_path / "x"
    with open(p, "wb") as fh:
        w = XentraceWriter(fh, 2.4, buf_bytes=64)
        for i in range(40):
            w(TraceRecord(10 * i, i % 3, TRC_SCHED_WAKE, (i % 3, i)))
        w.close(500)
    data = p.read_bytes()
    assert struct.unpack_from("<I", data)[0] == TRC_TRACE_CPU_CHANGE | (2 << 28)
    recs = [r for r in read_trace(p) if r.event == TRC_SCHED_WAKE]
    assert [r.words[1] for r in recs] == list(range(40))  # merged back in time order
    assert [r.tsc for r in recs] == [round(10 * i * 2.4) for i in range(40)]
    assert all(r.cpu == r.words[0] for r in recs)


def test_bad_trace_file_is_one_line(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02")
    with pytest.raises(ScenarioError, match="TRACE"):
        read_trace(p)


def test_tracing_does_not_change_results(traced):
    res, _xt, _pf = traced
    plain = build(_scenario()).run()
    assert plain.rows == res.rows
    assert json.dumps(plain.sched_rows, sort_keys=True) == json.dumps(res.sched_rows, sort_keys=True)  # NaN-safe


def test_python_dispatcher_traced_alike(tmp_path):
    res, xt, _pf = _traced(tmp_path, "python")
    assert build(_scenario("python")).run().rows == res.rows
    _check_runstates(res, xt)


def _check_runstates(res, xt):
    s = Summary(read_trace(xt)).to_dict()
    n_recs = {}
    for r in read_trace(xt):
        if (r.event & ~0xFF0) == TRC_SCHED_RUNSTATE_CHANGE:
            n_recs[r.words[0]] = n_recs.get(r.words[0], 0) + 1
    for row in res.sched_rows:
        d = next(x for x in s["domains"] if x["domain"] == row["domid"])
        v = next(x for x in d["vcpus"] if x["vcpu"] == row["vcpu"])
        tol = n_recs[(row["domid"] << 16) | row["vcpu"]] + 1  # 1 ns of rounding per record
        for k in ("running", "runnable", "blocked", "offline"):
            assert abs(v["runstates"][k]["ns"] - row[f"{k}_ns"]) <= tol, (row["name"], k)
        split = sum(v["runnable"][k]["ns"] for k in ("wake", "preempt", "other"))
        assert split == pytest.approx(v["runstates"]["runnable"]["ns"], abs=tol)


def test_xenalyze_runstates_equal_the_runs(traced):
    res, xt, _pf = traced
    _check_runstates(res, xt)
    s = Summary(read_trace(xt))
    assert s.hz == 3.0e9  # the modern profile's clock, from the file
    assert abs((s.t_end - s.t0) / s.hz - 0.3) < 1e-9
    text = s.text()
    assert text.startswith("Total time: 0.30 seconds (using cpu speed 3.00 GHz)")
    assert "|-- Domain 1 --|" in text and "-- v1 --" in text and "preempt:" in text
    # domain classes cover the trace exactly once
    for d in s.to_dict()["domains"]:
        if d["vcpus"]:
            assert sum(c["cycles"] for c in d["runstates"].values()) == s.t_end - s.t0


def test_perfetto_tracks(traced):
    _res, _xt, pf = traced
    doc = json.loads(pf.read_text())
    ev = doc["traceEvents"]
    names = [e for e in ev if e["ph"] == "M" and e["name"] == "thread_name"]
    assert sum(1 for e in names if e["pid"] == 0) == 2  # the host's pCPUs
    assert sum(1 for e in names if e["pid"] != 0) == 1 + 2 + 1 + 2 + 1  # the scenario's vCPUs
    slices = [e for e in ev if e["ph"] == "X"]
    assert slices and all(e["dur"] > 0 for e in slices)
    pc = [e for e in slices if e["pid"] == 0]
    assert {e["name"] for e in pc} >= {"build v0", "batch v1", "db v0"}
    for cpu in (0, 1):  # a pCPU's slices never overlap
        ss = sorted((e["ts"], e["ts"] + e["dur"]) for e in pc if e["tid"] == cpu)
        assert all(a[1] <= b[0] + 1e-6 for a, b in zip(ss, ss[1:]))
    assert {e["name"] for e in slices if e["pid"] != 0} >= {"running", "runnable", "blocked"}


def test_mask_filters_and_keeps_results(tmp_path, traced):
    res, _xt, _pf = _traced(tmp_path, mask="0x00021000")
    assert res.rows == traced[0].rows
    evs = {r.event & ~0xFF0 for r in read_trace(tmp_path / "t.xentrace") if r.event < 0x08000000}
    assert evs == {TRC_SCHED_RUNSTATE_CHANGE, TRC_SCHED_MIN + 2}


def test_hypercalls_grants_and_io_records(traced):
    res, xt, _pf = traced
    s = Summary(read_trace(xt)).to_dict()
    doms = {d["domain"]: d for d in s["domains"]}
    by_name = {r["domain"]: r for r in res.rows}
    ids = {0: "Domain-0", 1: "build", 2: "db", 3: "batch", 4: "web"}
    for domid, name in ids.items():
        if domid == 0:
            continue
        got = doms.get(domid, {"grants_done_for": {"map": 0, "unmap": 0}})["grants_done_for"]
        assert got["map"] == by_name[name]["counts"].get("grant.map", 0), name
        assert got["unmap"] == by_name[name]["counts"].get("grant.unmap", 0), name
    assert doms[0]["grants_done_by"]["map"] == sum(doms[d]["grants_done_for"]["map"] for d in doms if d)
    hc = {h["name"]: h["count"] for h in doms[0]["vcpus"][0]["hypercalls"]}
    assert hc["grant_table_op"] > 0 and hc["event_channel_op"] > 0 and hc["sched_op"] > 0
    exits = {e["name"]: e for v in doms[2]["vcpus"] for e in v["vmexits"]}
    assert exits["HLT"]["count"] > 0 and exits["HLT"]["avg_cycles"] > 0  # the pvh guest idles with HLT exits
