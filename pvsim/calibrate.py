"""Calibration from a user's own lmbench run: fit a profile's native primitive costs, keep the
hypervisor's, write a profile file that says where every fitted number came from.

Design note: the input is the summary that lmbench 3's ``make see`` prints (``scripts/getsummary``:
the "Processor, Processes", "Context switching" and "File & VM system latencies" tables, times in
microseconds, the machine's clock in the ``Mhz`` column). pvsim prices each lmbench op natively as
its kernel path length (the ``fill``, derived once from SOSP'03 L-UP; ``pvsim.pricing.fill_cycles``)
plus the native primitives it is described with (system call, page fault, context switch, CR3
load, TLB refill, ...), so a native latency in cycles is affine in the native constants. The fit
(:func:`fit`) measures that dependence by running the native ops through the simulator with each
constant perturbed in turn (one run per constant), keeps the constants the benchmarks can tell
apart (a column of the sensitivity matrix that is negligible or linearly dependent on the others
is left at the base profile's value and said so), and solves the bounded least-squares problem in
relative residuals with ``scipy.optimize.least_squares``. The written profile starts from a named
base profile (``base = "..."``), so every hypervisor constant (hypercall entry, VM exit, shadow
fault, grant and event-channel costs) stays the base's; it is then used to predict the virtualized
numbers on the user's machine. Simplifications: the kernel path lengths are Linux 2.4's (the
SOSP'03 machine's); a user's different kernel shows as residuals, which the file records.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pvsim.compare import compare
from pvsim.core.errors import ScenarioError
from pvsim.core.profile import SECTIONS, load_profile
from pvsim.workloads.lmbench import SOSP03

#: lmbench summary columns (table, column header words) -> pvsim's lmbench op.
COLUMNS = {
    "processes": ["null_call", "null_io", "stat", "open_close", "slct_tcp", "sig_inst", "sig_hndl", "fork", "exec",
                  "sh"],
    "context": ["ctx_2p_0k", "ctx_2p_16k", "ctx_2p_64k", "ctx_8p_16k", "ctx_8p_64k", "ctx_16p_16k", "ctx_16p_64k"],
    "filevm": ["fs_create_0k", "fs_delete_0k", "fs_create_10k", "fs_delete_10k", "mmap", "prot_fault", "page_fault",
               None],  # 100fd selct: not an op of pvsim's
}
_TITLES = {"processes": "Processor, Processes", "context": "Context switching", "filevm": "File & VM system latencies"}
#: Relative perturbation of a constant when its sensitivity is measured.
STEP = 0.25
#: A constant whose whole value moves no benchmark by this fraction is not identifiable from the
#: summary's 3-4 significant digits: it keeps the base profile's value.
NEGLIGIBLE = 0.01


@dataclass
class Measured:
    host: str
    mhz: float
    latencies_us: dict[str, float]  # op -> us


def parse_lmbench(text: str, where: str = "lmbench") -> Measured:
    """The three latency tables of an lmbench summary (the first host line of each)."""
    lines = text.splitlines()
    found: dict[str, float] = {}
    host, mhz = None, None
    for key, title in _TITLES.items():
        start = next((i for i, ln in enumerate(lines) if ln.strip().startswith(title)), None)
        if start is None:
            continue
        dash = next((i for i in range(start + 2, min(start + 8, len(lines))) if re.match(r"^-+( +-+)+\s*$", lines[i])),
                    None)
        if dash is None or dash + 1 >= len(lines) or not lines[dash + 1].strip():
            raise ScenarioError(where, f"the {title!r} table has no result line")
        spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[dash])]
        row = lines[dash + 1]
        want = len(COLUMNS[key]) + (1 if key == "processes" else 0)
        tokens = row[spans[1][1]:].split() if len(spans) > 2 else []
        if len(tokens) == want:  # every value present: take them in order (values may overflow a column)
            cells = [row[:spans[0][1]].strip(), row[spans[1][0]:spans[1][1]].strip(), *tokens]
        else:  # some blank: cut the line at the columns the dashes draw
            cells = []
            for j, (a, _b) in enumerate(spans):
                end = spans[j + 1][0] if j + 1 < len(spans) else len(row) + 1
                cells.append(row[a:end].strip())
        host = host or cells[0]
        values = cells[2:]
        if key == "processes":
            try:
                mhz = float(values[0])
            except (ValueError, IndexError):
                raise ScenarioError(where, f"the {title!r} table has no Mhz value") from None
            values = values[1:]
        for op, cell in zip(COLUMNS[key], values):
            if op is None or not cell:
                continue
            try:
                v = float(cell)
            except ValueError:
                raise ScenarioError(where, f"{op}: {cell!r} is not a number") from None
            if v <= 0:
                raise ScenarioError(where, f"{op}: {v} is not a latency")
            found[op] = v
    if mhz is None:
        raise ScenarioError(where, "no 'Processor, Processes' table with a Mhz column (is this lmbench's summary?)")
    if len(found) < 3:
        raise ScenarioError(where, f"only {len(found)} latencies found; the fit needs at least 3")
    return Measured(host or "host", mhz, found)


def format_lmbench(host: str, mhz: float, lat: dict[str, float], os_name: str = "Linux") -> str:
    """An lmbench summary in the layout of ``make see``, values to 4 significant digits (a column
    widens where a value needs it, as lmbench's own columns do)."""
    def table(title, width, head1, head2, ops, widths, first=()):
        vals = [*first, *(("" if lat.get(op) is None else f"{lat[op]:.4g}") for op in ops)]
        ws = [max(w, len(v)) for w, v in zip(widths, vals)]
        h = f"{host[:9]:9s} {os_name[:13]:13s}"
        return [f"{title} - times in microseconds - smaller is better", "-" * width, head1, head2,
                "--------- ------------- " + " ".join("-" * w for w in ws),
                h + " " + " ".join(f"{v:>{w}s}" for v, w in zip(vals, ws)), ""]

    out = ["                 L M B E N C H  3 . 0   S U M M A R Y", "                 " + "-" * 36, ""]
    out += table("Processor, Processes", 78,
                 "Host                 OS  Mhz null null      open slct sig  sig  fork exec sh  ",
                 "                             call  I/O stat clos TCP  inst hndl proc proc proc",
                 COLUMNS["processes"], [4] * 11, first=(f"{mhz:.0f}",))
    out += table("Context switching", 73,
                 "Host                 OS  2p/0K 2p/16K 2p/64K 8p/16K 8p/64K 16p/16K 16p/64K",
                 "                         ctxsw  ctxsw  ctxsw ctxsw  ctxsw   ctxsw   ctxsw",
                 COLUMNS["context"], (6, 6, 6, 6, 6, 7, 7))
    out[-7] = "Context switching - times in microseconds - smaller is better"
    out += table("File & VM system latencies in microseconds", 79,
                 "Host                 OS   0K File      10K File     Mmap    Prot   Page   100fd",
                 "                        Create Delete Create Delete Latency Fault  Fault  selct",
                 COLUMNS["filevm"][:-1], (6, 6, 6, 6, 7, 5, 7))
    out[-7] = "File & VM system latencies in microseconds - smaller is better"
    return "\n".join(out)


# ------------------------------------------------------------------------------------------- the fit
def _profile_text(name: str, base: str, clock_ghz: float, values: dict[str, float], sources: dict[str, str],
                  calibrated_on: dict[str, str] | None = None) -> str:
    out = [f"# {name}: written by pvsim calibrate", f'name = "{name}"', f'base = "{base}"',
           f'description = "{base} with native costs fitted on a user\'s lmbench run"', f"clock_ghz = {clock_ghz:.6g}",
           f'clock_source = "{sources.get("clock_ghz", "lmbench Mhz column")}"']
    by_sec: dict[str, list[str]] = {}
    for k, v in values.items():
        sec, ck = k.split(".", 1)
        cal = f', calibrated_on = "{calibrated_on[k]}"' if calibrated_on and k in calibrated_on else ""
        src = sources[k].replace('"', "'")
        by_sec.setdefault(sec, []).append(f'{ck} = {{ value = {v:.6g}, source = "{src}"{cal} }}')
    for sec in SECTIONS:
        if sec in by_sec:
            out += ["", f"[{sec}]", *by_sec[sec]]
    return "\n".join(out) + "\n"


class _Runner:
    """Native latencies (cycles) of the measured ops under a base profile with some constants set."""

    def __init__(self, base: str, clock_ghz: float, ops: list[str], n_ops: int):
        self.base, self.clock, self.ops, self.n = base, clock_ghz, ops, n_ops
        self.dir = tempfile.TemporaryDirectory(prefix="pvsim-calibrate-")
        self.k = 0

    def __call__(self, values: dict[str, float]) -> np.ndarray:
        self.k += 1  # a fresh file each time: prices are memoised by profile path
        p = Path(self.dir.name) / f"trial{self.k}.toml"
        p.write_text(_profile_text(f"trial{self.k}", self.base, self.clock, values, {k: "trial" for k in values}))
        rows = compare([f"lmbench.{o}" for o in self.ops], ["native"], str(p), ops=self.n)
        v = {r["workload"][len("lmbench."):]: r["value"] for r in rows}
        return np.array([v[o] * 1000.0 * self.clock for o in self.ops])

    def close(self):
        self.dir.cleanup()


@dataclass
class Fit:
    base: str
    clock_ghz: float
    fitted: dict[str, float]  # constant -> value
    kept: dict[str, str]  # constant -> why it kept the base's value
    residuals: dict[str, float]  # op -> predicted/measured - 1, with the fitted profile
    measured_us: dict[str, float]


def candidates(base: str) -> list[str]:
    """The native time constants of the base profile (the costs a user's machine changes)."""
    prof = load_profile(base, field_name="--base")
    return sorted(k for k in prof.constants if k.startswith("native.") and k.endswith("_cycles"))


def fit(measured: Measured, base: str = "xeon-2003", n_ops: int = 200, constants: list[str] | None = None) -> Fit:
    """Fit the native constants of ``base`` to ``measured`` (see the Design note)."""
    from scipy.optimize import least_squares  # third-party; its ~1-2 s import is paid by this command only

    prof = load_profile(base, field_name="--base")
    ops = [o for o in SOSP03 if o in measured.latencies_us]
    clock = measured.mhz / 1000.0
    y = np.array([measured.latencies_us[o] * 1000.0 * clock for o in ops])
    names = constants or candidates(base)
    for k in names:
        if k not in prof.constants:
            raise ScenarioError("--constants", f"{k!r} is not a constant of profile {base!r}")
    x0 = np.array([prof.value(k) for k in names])
    run = _Runner(base, clock, ops, n_ops)
    try:
        f0 = run({})
        cols = []
        for i, k in enumerate(names):
            d = max(1.0, STEP * x0[i])
            cols.append((run({k: x0[i] + d}) - f0) / d)
        J = np.array(cols).T  # ops x constants: cycles per unit of each constant
        kept: dict[str, str] = {}
        use: list[int] = []
        weight = (np.abs(J) * x0[None, :] / f0[:, None]).max(axis=0)  # largest share of a latency
        for i in np.argsort(-weight, kind="stable"):
            k = names[i]
            if weight[i] == 0:
                kept[k] = "no lmbench op here depends on it"
                continue
            if weight[i] < NEGLIGIBLE:
                kept[k] = f"at most {weight[i]:.2%} of any benchmark here: below what the summary resolves"
                continue
            trial = use + [int(i)]
            sub = J[:, trial] / y[:, None]
            if np.linalg.matrix_rank(sub, tol=1e-6 * np.linalg.norm(sub)) < len(trial):
                kept[k] = "not separable from the other fitted constants by these benchmarks"
                continue
            use = trial
        a = f0 - J[:, use] @ x0[use]  # the affine model: f(x) = a + J x

        def resid(x):
            return (a + J[:, use] @ x) / y - 1.0

        sol = least_squares(resid, x0[use], bounds=(0.0, np.inf), x_scale=np.maximum(x0[use], 1.0), method="trf")
        fitted = {names[i]: float(v) for i, v in zip(use, sol.x)}
        final = run(fitted)
    finally:
        run.close()
    residuals = {o: float(final[j] / y[j] - 1.0) for j, o in enumerate(ops)}
    return Fit(base, clock, fitted, kept, residuals, {o: measured.latencies_us[o] for o in ops})


def profile_file(fit_: Fit, name: str, source: str) -> str:
    """The fitted profile, each fitted constant citing the file and benchmarks it was fitted on and
    the fit's residuals."""
    benches = ", ".join(fit_.measured_us)
    worst = max(fit_.residuals.items(), key=lambda kv: abs(kv[1]))
    rms = float(np.sqrt(np.mean(np.square(list(fit_.residuals.values())))))
    srcs = {k: f"fitted on {source}, {benches}; rms residual {rms:.2%}, worst {worst[0]} {worst[1]:+.2%}"
            for k in fit_.fitted}
    srcs["clock_ghz"] = f"lmbench Mhz column of {source}"
    cal = {k: f"{source} (lmbench: {benches})" for k in fit_.fitted}
    return _profile_text(name, fit_.base, fit_.clock_ghz, fit_.fitted, srcs, cal)
