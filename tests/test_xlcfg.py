"""xl.cfg domain files (Xen's tools/examples reproduced) and the xl verbs with --json."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvsim.cli import app as pvsim_app
from pvsim.core.errors import ScenarioError
from pvsim.xl import app
from pvsim.xlcfg import domain_from_xlcfg, parse_disk, parse_vif, parse_xlcfg

ROOT = Path(__file__).resolve().parents[1]
XL = ROOT / "examples" / "xl"
EXAMPLES = ["xlexample.pvlinux", "xlexample.hvm", "xlexample.pvhlinux"]
runner = CliRunner()

SCEN = """
name = "t"
seed = 1
[host]
pcpus = 2
[run]
duration_ms = 60
[[domains]]
name = "hog"
mode = "pv"
workload = "cpu-int"
vcpus = 2
[[domains]]
name = "batch"
mode = "hvm"
workload = "cpu-int"
[[timeline]]
at_ms = 40
domain = "batch"
cap = 100
"""


@pytest.fixture
def scen(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(SCEN)
    return str(p)


def test_xens_examples_parse():
    doms = {f: domain_from_xlcfg(XL / f) for f in EXAMPLES}
    assert doms["xlexample.pvlinux"] == ({"name": "example.pvlinux", "memory_mib": 128, "vcpus": 2, "mode": "pv"},
                                         ["extra"])
    assert doms["xlexample.hvm"][0]["mode"] == "hvm" and doms["xlexample.hvm"][1] == ["sdl"]
    assert doms["xlexample.pvhlinux"][0] == {"name": "example.pvhlinux", "memory_mib": 512, "vcpus": 4,
                                             "mode": "pvh"}


def test_xl_create_runs_the_three_examples():
    res = runner.invoke(app, ["create", *[str(XL / f) for f in EXAMPLES], "--host", str(XL / "host.toml"),
                              "--duration-ms", "40", "--json", "-"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    names = [r["name"] for r in doc["results"]]
    assert names == ["Domain-0", "example.pvlinux", "example.hvm", "example.pvhlinux"]
    assert [r["vcpus"] for r in doc["results"]][1:] == [2, 2, 4]
    assert doc["view"]["at_ms"] == 40.0
    assert "ignored: xlexample.pvlinux: extra, xlexample.hvm: sdl, xlexample.pvhlinux: extra" in res.stderr


def test_pvsim_run_takes_an_xlcfg(tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(pvsim_app, ["run", str(XL / "xlexample.hvm"), "--host", str(XL / "host.toml"), "-q",
                                    "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["results"]
    assert {r["domain"]: r["mode"] for r in rows} == {"Domain-0": "pv", "example.hvm": "hvm"}


def test_misspelled_key_is_one_line_exit_2(tmp_path):
    p = tmp_path / "bad.cfg"
    p.write_text((XL / "xlexample.pvlinux").read_text().replace("vcpus = 2", "vcpu = 2"))
    res = runner.invoke(app, ["create", str(p), "--duration-ms", "10"])
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "bad.cfg:34: vcpu: unknown key (did you mean `vcpus`?)" in err, err
    assert "Traceback" not in res.output


@pytest.mark.parametrize("text, field", [
    ('name = "a"\ntype = "xen"\nkernel = "/k"\n', "type"),
    ('name = "a"\nkernel = "/k"\nmemory = 64\nmaxmem = 32\n', "maxmem"),
    ('name = "a"\nkernel = "/k"\nvcpus = 4\nmaxvcpus = 2\n', "maxvcpus"),
    ('name = "a"\n', "kernel"),
    ('kernel = "/k"\n', "name"),
    ('name = "a"\nkernel = "/k"\ndisk = [ "/dev/x,raw,xvda,rw,extra" ]\n', "disk"),
    ('name = "a"\nkernel = "/k"\ndisk = [ "/dev/x,raw,xvda,rx" ]\n', "access"),
    ('name = "a"\nkernel = "/k"\nvif = [ "mac=zz" ]\n', "mac"),
    ('name = "a"\nkernel = "/k"\nvif = [ "bridge=xenbr0,colour=red" ]\n', "colour"),
    ('name = "a"\nkernel = "/k"\npool = "other"\n', "pool"),
    ('name = "a"\nkernel = "/k"\nvcpus = [ 1\n', "vcpus"),
    ('name = "a"\nkernel "/k"\n', "bad.cfg:2"),
])
def test_bad_files_name_the_field(tmp_path, text, field):
    p = tmp_path / "bad.cfg"
    p.write_text(text)
    with pytest.raises(ScenarioError, match=field):
        domain_from_xlcfg(p)


def test_keys_map_to_the_domain(tmp_path):
    p = tmp_path / "g.cfg"
    p.write_text('name = "g"\ntype = "hvm"\nmemory = 1024\nmaxmem = 2048\nvcpus = 2\nmaxvcpus = 4\n'
                 'cpus = "0-1"\ncpu_weight = 512\ncap = 150\npool = "Pool-0"\nxen_platform_pci = 1\n'
                 "disk = [ 'format=raw, vdev=xvda, access=rw, target=/dev/vg/g' ]\n"
                 "vif = [ 'mac=00:16:3e:00:00:01,bridge=xenbr0' ]\non_crash = \"restart\"\n"
                 'device_model_version = "qemu-xen"\npvsim_workload = "kernel-build"\n')
    d, ign = domain_from_xlcfg(p)
    assert d == {"name": "g", "memory_mib": 1024, "vcpus": 2, "cpus": "0-1", "weight": 512, "cap": 150,
                 "mode": "pvhvm", "workload": "kernel-build"}
    assert ign == ["on_crash"]
    p.write_text(p.read_text().replace("bridge=xenbr0", "bridge=xenbr0,model=e1000"))
    assert domain_from_xlcfg(p)[0]["mode"] == "hvm"  # an emulated NIC model keeps the emulated path
    p.write_text('name = "o"\nbuilder = "hvm"\n')
    assert domain_from_xlcfg(p)[0]["mode"] == "hvm"


def test_specs():
    assert parse_disk("/dev/vg/g,raw,xvda,rw", "d") == {"target": "/dev/vg/g", "format": "raw", "vdev": "xvda",
                                                        "access": "rw"}
    assert parse_disk("vdev=hdc, devtype=cdrom, access=ro, target=/x.iso", "d")["devtype"] == "cdrom"
    assert parse_vif("", "v") == {}
    with pytest.raises(ScenarioError, match="backend"):
        parse_vif("backend=netdom", "v")
    cfg = parse_xlcfg("a = 1 # c\nb = [ 'x', # one\n 'y' ]\nc = \"s#t\"\n")
    assert {k: v for k, (v, _l) in cfg.items()} == {"a": 1, "b": ["x", "y"], "c": "s#t"}


@pytest.mark.parametrize("verb", [
    ["list"], ["vcpu-list"], ["sched-credit"], ["vcpu-pin", "hog", "0", "1"], ["pause", "batch"],
    ["unpause", "batch"], ["destroy", "batch"], ["shutdown", "batch"], ["info"], ["top", "-d", "0.02"],
])
def test_every_verb_has_json(scen, verb):
    res = runner.invoke(app, [*verb, "-f", scen, "--json", "-"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["results"] and "at_ms" in doc["view"]


def test_sched_credit_view_says_when_and_what(scen):
    res = runner.invoke(app, ["sched-credit", "-f", scen, "-d", "batch", "-w", "512", "-c", "0"])
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    assert first.startswith("# view at t = 60.000 ms (end of the run); changes included: 0 ms batch weight=512 "
                            "cap=0 (command); 40 ms batch cap=100 (timeline)"), first
    assert "override it" in res.stdout
    assert res.stdout.rstrip().endswith("512  100")  # the timeline's cap, said to be the timeline's
    res = runner.invoke(app, ["sched-credit", "-f", scen, "--json", "-"])
    doc = json.loads(res.stdout)
    assert doc["view"]["changes"] == [{"at_ms": 40.0, "change": "batch cap=100", "source": "timeline"}]


def test_destroy_and_pause_show_in_list(scen):
    res = runner.invoke(app, ["destroy", "batch", "-f", scen, "--at-ms", "10", "--json", "-"])
    rows = {r["name"]: r for r in json.loads(res.stdout)["results"]}
    assert rows["batch"]["state"][3] == "s" and rows["batch"]["vcpus"] == 0
    res = runner.invoke(app, ["pause", "hog", "-f", scen, "--at-ms", "10", "--json", "-"])
    rows = {r["name"]: r for r in json.loads(res.stdout)["results"]}
    assert rows["hog"]["state"][2] == "p"


def test_wrong_domain_checked_before_the_run(scen):
    for verb in (["pause", "nosuch"], ["sched-credit", "-d", "nosuch"], ["vcpu-list", "nosuch"]):
        res = runner.invoke(app, [*verb, "-f", scen])
        assert res.exit_code == 2 and "no domain 'nosuch'" in res.stderr
