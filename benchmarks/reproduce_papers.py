"""Published tables side by side with pvsim's predictions.

    .venv/bin/python benchmarks/reproduce_papers.py [--mmu structural|counted] [--markdown]

* ASPLOS'06 nanobenchmarks (p4-2006 profile): published cycles (S3, [V]) vs predicted; the calibration
  point (nano.pgfault) is marked and is not a validation.
* SOSP'03 lmbench (xeon-2003 profile): published Xen and VMware Workstation latencies (Barham et al.
  SOSP'03, Table 3 / Figure 3; docs/calibration.md lists them) vs pv32 and bt predictions, as ratios to native. Only the native (L-UP) column is
  an input.
"""

from __future__ import annotations

import argparse

from pvsim.compare import compare
from pvsim.workloads import CALIBRATION_SET, PUBLISHED

# SOSP'03 (Barham et al., lmbench table): L-UP, Xen, VMW
SOSP03 = {
    "null_call": (0.45, 0.46, 0.73), "null_io": (0.50, 0.50, 0.83), "stat": (1.28, 1.22, 1.88),
    "open_close": (1.92, 1.88, 2.99), "slct_tcp": (5.70, 5.69, 11.1), "sig_inst": (0.68, 0.69, 1.02),
    "sig_hndl": (2.49, 1.75, 4.63), "fork": (110, 198, 874), "exec": (530, 768, 2300), "sh": (4000, 4800, 10000),
    "ctx_2p_0k": (0.77, 1.97, 18.1), "ctx_2p_16k": (0.91, 2.22, 17.6), "ctx_2p_64k": (1.06, 2.67, 21.3),
    "ctx_8p_16k": (1.03, 3.07, 22.4), "ctx_8p_64k": (24.3, 28.7, 51.6), "ctx_16p_16k": (3.61, 7.08, 41.7),
    "ctx_16p_64k": (37.6, 39.4, 72.2), "fs_create_0k": (32.1, 32.5, 35.3), "fs_delete_0k": (6.08, 5.86, 9.3),
    "fs_create_10k": (66.9, 68.2, 85.6), "fs_delete_10k": (12.5, 13.6, 21.4), "mmap": (68.0, 139, 620),
    "prot_fault": (1.06, 1.40, 7.53), "page_fault": (1.42, 2.73, 12.4),
}


def _rows(workloads, modes, profile, mmu, ops):
    """The comparison rows of ``workloads`` x ``modes`` (Scenario -> build -> run, like every command)."""
    opts = {"mmu": mmu} if mmu != "structural" else None
    rows = compare(workloads, modes, profile, ops=ops, options=opts)
    return {(r["workload"], r["mode"]): r["value"] for r in rows}


def nanobench(mmu: str) -> list[tuple]:
    v = _rows(list(PUBLISHED), ["native", "bt", "hvm-shadow"], "p4-2006", mmu, 2000)
    out = []
    for test, pub in PUBLISHED.items():
        native = v[(test, "native")]
        for mode in ("bt", "hvm-shadow"):
            got = v[(test, mode)]
            ref = pub[mode]
            if ref == "native":
                ref = native
            elif ref == "native+2000":
                ref = native + 2000
            role = "calibration" if test in CALIBRATION_SET else "prediction"
            out.append((test, mode, ref, got, (got - ref) / ref, role))
    return out


def lmbench(mmu: str) -> list[tuple]:
    v = _rows([f"lmbench.{n}" for n in SOSP03], ["native", "pv32", "bt"], "xeon-2003", mmu, 2000)
    out = []
    for name, (lup, xen, vmw) in SOSP03.items():
        op = f"lmbench.{name}"
        n = v[(op, "native")]
        out.append((name, lup, xen / lup, v[(op, "pv32")] / n, vmw / lup, v[(op, "bt")] / n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mmu", default="structural", choices=["structural", "counted"])
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    sep = " | " if a.markdown else "  "
    print("ASPLOS'06 nanobenchmarks, p4-2006 (cycles)")
    print(sep.join(["test", "mode", "published", "pvsim", "deviation", "role"]))
    for t, m, ref, got, dev, role in nanobench(a.mmu):
        print(sep.join([t, m, f"{ref:.0f}", f"{got:.0f}", f"{dev:+.1%}", role]))
    print()
    print("SOSP'03 lmbench, xeon-2003 (ratio to native L-UP)")
    print(sep.join(["op", "L-UP us", "Xen/L-UP paper", "pv32 pvsim", "VMW/L-UP paper", "bt pvsim"]))
    for name, lup, xr, pv, vr, bt in lmbench(a.mmu):
        print(sep.join([name, f"{lup:g}", f"{xr:.2f}", f"{pv:.2f}", f"{vr:.2f}", f"{bt:.2f}"]))


if __name__ == "__main__":
    main()
