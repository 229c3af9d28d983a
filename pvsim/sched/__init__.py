"""Xen's CPU schedulers and the pCPU dispatcher.

Public API::

    from pvsim.sched import make_scheduler, HostRunner, Run, Block, Wait, Done, validate_sched_params
    sched = make_scheduler("credit", {"tslice_ms": 30})
    runner = HostRunner(engine, sched, n_pcpus=4)
    runner.add_vcpu(1, 0, behaviour, weight=512, cap=0, affinity={0, 1})
    runner.start(); engine.run(until_ns); runner.stats()

See ``docs/schedulers.md``.
"""

from pvsim.core.engine import Block, Done, Run, Wait
from pvsim.sched.ops import SCHEDULER_NAMES, Scheduler, make_scheduler
from pvsim.sched.params import validate_sched_params
from pvsim.sched.runner import HostRunner

__all__ = [
    "make_scheduler", "HostRunner", "Run", "Block", "Wait", "Done", "validate_sched_params",
    "Scheduler", "SCHEDULER_NAMES",
]
