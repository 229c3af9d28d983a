"""The ASPLOS'06 nanobenchmarks (Adams & Agesen §6.3), run in a FrobOS-like test kernel.

Each op is one iteration of the test loop; the metric is cycles per operation. FrobOS runs the tests
in the kernel, with no interrupts, so nothing but the named event happens (S3 quotes).
"""

from __future__ import annotations

from pvsim.workloads.base import act as A
from pvsim.workloads.base import op_mix
from pvsim.workloads.spec import FootprintSpec

NANO = {
    op.name: op
    for op in (
        op_mix("nano.syscall", (A("syscall"),), metric="cycles_per_op", group="nano",
           description="syscall/sysret round trip from user level"),
        op_mix("nano.in", (A("io_port"),), metric="cycles_per_op", group="nano",
           description="in from port 0x80 (BIOS POST port)"),
        op_mix("nano.cr8wr", (A("cr8_write"),), metric="cycles_per_op", group="nano",
           description="write %cr8 (TPR); never lowers below a pending interrupt"),
        op_mix("nano.call_ret", (A("call_ret", 1),), metric="cycles_per_op", group="nano",
           description="call/ret pair in the kernel"),
        op_mix("nano.pgfault", (A("page_fault", "nano"),), metric="cycles_per_op", group="nano",
           description="true guest page fault (software MMU interposes)"),
        op_mix("nano.divzero", (A("exception"),), metric="cycles_per_op", group="nano",
           description="division by zero: fault semantics without MMU work"),
        op_mix("nano.ptemod", (A("ptemod"),), metric="cycles_per_op", group="nano",
           description="one guest PTE write (trace-based shadow coherency)"),
    )
}

# footprint: a FrobOS test loop is a few instructions over one or two pages of code and data [estimate]
_LOOP = FootprintSpec(cache_kib=4, tlb_pages=2, source="a FrobOS test loop: one or two pages of code and data [estimate]")
NANO = {n: s.model_copy(update={"footprint": _LOOP}) for n, s in NANO.items()}

# ASPLOS'06 §6.3 published values (cycles), S3 [V]; used by validation tests and the table's reference column.
PUBLISHED = {
    "nano.syscall": {"native": None, "bt": "native+2000", "hvm-shadow": "native"},
    "nano.in": {"native": 3209, "bt": 214, "hvm-shadow": 15826},
    "nano.cr8wr": {"native": 140, "bt": 35, "hvm-shadow": 140},
    "nano.call_ret": {"native": 11, "bt": 51, "hvm-shadow": 11},
    "nano.pgfault": {"native": 1093, "bt": 3927, "hvm-shadow": 11242},
    "nano.divzero": {"native": 889, "bt": 3223, "hvm-shadow": 1014},
    "nano.ptemod": {"native": 1, "bt": 391, "hvm-shadow": 12733},
}
#: Nanobenchmarks on which a constant was calibrated for every mode (profiles' ``calibrated_on``; single
#: rows such as ``nano.call_ret:bt`` are in pvsim.validation.calibrated_measurements()).
CALIBRATION_SET = {"nano.pgfault", "nano.cr8wr"}
