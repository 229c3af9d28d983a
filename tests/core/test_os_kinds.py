"""Guest OS kinds (guest_kernels.oskinds): each refusal is the one-line error naming the field, exit 2,
via the CLI; the defaults (linux, the mode's own width) still run unchanged."""

import pytest
from typer.testing import CliRunner

from guest_kernels.modes import MODES, OS_KINDS
from guest_kernels.oskinds import refusal
from pvsim.cli import app
from pvsim.core.profile import load_profile
from pvsim.scenario import DomainSpec, HostSpec

BASE = """
seed = 1
[host]
pcpus = 1
memory_mib = 4096
profile = "{profile}"
{host_extra}
[run]
ops = 5
[[domains]]
name = "g"
mode = "{mode}"
workload = "cpu-int"
memory_mib = 1024
{dom_extra}
"""

REFUSED = {
    "windows under pv": ("modern", "pv", "", 'os = "windows"', "domains[0].os"),
    "windows under pv32": ("xeon-2003", "pv32", "", 'os = "windows"', "domains[0].os"),
    "bsd container on a linux host": ("modern", "container", "", 'os = "bsd"', "domains[0].os"),
    "64-bit container on a 32-bit host": ("modern", "container", "bits = 32", "bits = 64", "domains[0].bits"),
    "64-bit guest under 2003 BT": ("xeon-2003", "bt", "", "bits = 64", "domains[0].bits"),
    "64-bit guest under 2006 BT": ("p4-2006", "bt", "", "bits = 64", "domains[0].bits"),
    "32-bit guest under pv": ("modern", "pv", "", "bits = 32", "domains[0].bits"),
    "64-bit guest under pv32": ("xeon-2003", "pv32", "", "bits = 64", "domains[0].bits"),
    "windows under uml": ("xeon-2003", "uml", "", 'os = "windows"', "domains[0].os"),
    "uml on a solaris host": ("xeon-2003", "uml", 'os = "solaris"', "", "domains[0].mode"),
    "unknown os": ("modern", "hvm", "", 'os = "plan9"', "domains[0].os"),
    "odd width": ("modern", "hvm", "", "bits = 16", "domains[0].bits"),
    "unknown host os": ("modern", "hvm", 'os = "beos"', "", "host.os"),
}

ALLOWED = {
    "windows under pvhvm": ("modern", "pvhvm", "", 'os = "windows"'),
    "windows under hvm, 64-bit": ("modern", "hvm", "", 'os = "windows"\nbits = 64'),
    "windows under 2003 BT, 32-bit": ("xeon-2003", "bt", "", 'os = "windows"\nbits = 32'),
    "bsd under pv": ("modern", "pv", "", 'os = "bsd"'),
    "solaris container on a solaris host": ("modern", "container", 'os = "solaris"', 'os = "solaris"'),
    "32-bit linux under pv32": ("xeon-2003", "pv32", "", "bits = 32"),
    "64-bit guest under modern BT": ("modern", "bt", "", "bits = 64"),
    "linux under uml (pvsim run)": ("xeon-2003", "uml", "", ""),
}


def _run(tmp_path, profile, mode, host_extra, dom_extra):
    f = tmp_path / "s.toml"
    f.write_text(BASE.format(profile=profile, mode=mode, host_extra=host_extra, dom_extra=dom_extra))
    out = tmp_path / "out.json"
    return CliRunner().invoke(app, ["run", str(f), "--json", str(out), "--quiet"]), out


@pytest.mark.parametrize("case", list(REFUSED))
def test_refusal_is_one_line_exit_2(tmp_path, case):
    profile, mode, host_extra, dom_extra, field = REFUSED[case]
    r, out = _run(tmp_path, profile, mode, host_extra, dom_extra)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pvsim: error: ") and field in lines[0], r.output
    assert "Traceback" not in r.output and not out.exists()


@pytest.mark.parametrize("case", list(ALLOWED))
def test_allowed_pairings_run(tmp_path, case):
    profile, mode, host_extra, dom_extra = ALLOWED[case]
    r, out = _run(tmp_path, profile, mode, host_extra, dom_extra)
    assert r.exit_code == 0, r.output
    assert out.exists()


def test_32_bit_pv_points_at_pv32():
    spec = MODES["pv"]
    field, msg = refusal(spec, "linux", 32, "linux", 64, load_profile("modern"))
    assert field == "bits" and "'pv32'" in msg


def test_defaults_are_linux_and_the_modes_own_width_and_refuse_nothing():
    d, h = DomainSpec(name="g", mode="pv"), HostSpec()
    assert (d.os, d.bits, h.os, h.bits) == ("linux", None, "linux", 64)
    assert set(OS_KINDS) == {"linux", "bsd", "solaris", "windows"}
    for name in ("xeon-2003", "p4-2006", "modern"):
        prof = load_profile(name)
        for spec in MODES.values():
            assert refusal(spec, d.os, d.bits, h.os, h.bits, prof) is None, (name, spec.name)


def test_default_domain_result_unchanged_by_naming_its_defaults(tmp_path):
    """Spelling out the defaults (os = "linux" on a linux host) changes nothing in the result."""
    r1, out1 = _run(tmp_path, "modern", "pv", "", "")
    text1 = out1.read_text()
    r2, out2 = _run(tmp_path, "modern", "pv", 'os = "linux"\nbits = 64', 'os = "linux"')
    assert r1.exit_code == 0 and r2.exit_code == 0
    assert out2.read_text() == text1
