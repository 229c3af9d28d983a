"""Tracing a run: the xentrace and Perfetto writers subscribed to a built system's trace bus.

Design note
-----------
As ``xentrace`` reads the trace buffers of one Xen host, a run is traced on its host's bus
(``Engine.subscribe``); both writers are subscribers, so a run with tracing on makes the same
decisions as one without (the dispatchers only build records when someone subscribes). The
files are written through :class:`pvsim.results.Outputs`: streamed to temporary files and moved
into place only when the run succeeded.

Simplifications: one host per traced run (the hosts of a scenario share one engine and one bus,
and their pCPU numbers would collide in one file).
"""

from __future__ import annotations

from pathlib import Path

from pvsim.core.errors import ScenarioError
from pvsim.results import Outputs
from pvsim.trace.perfetto import ChromeTraceWriter
from pvsim.trace.xentrace import XentraceWriter, parse_mask


class Tracing:
    """Subscribe the writers asked for to ``system`` (built, not yet run); :meth:`close` after the run."""

    def __init__(self, system, outs: Outputs, xentrace: str | Path | None = None,
                 perfetto: str | Path | None = None, mask: str | int | None = None):
        self.system = system
        self.writers = []
        self._files = []
        if xentrace is None and perfetto is None:
            return
        if len(system.hosts) != 1:
            raise ScenarioError("--trace", f"a trace is of one host; this scenario has {len(system.hosts)}")
        host = system.hosts[0]
        ghz = host.profile.clock_ghz
        now = system.engine.now_ns
        if xentrace is not None:
            fh = open(outs.path_for(xentrace), "wb")
            self._files.append(fh)
            self.writers.append(XentraceWriter(fh, ghz, parse_mask(mask), start_ns=now))
        if perfetto is not None:
            fh = open(outs.path_for(perfetto), "w", encoding="utf-8")
            self._files.append(fh)
            doms = {d.domain.domid: (d.spec.name, len(d.domain.units)) for d in host.domains}
            self.writers.append(ChromeTraceWriter(fh, host.spec.pcpus, doms, ghz))
        for w in self.writers:
            system.engine.subscribe(w)

    def close(self) -> None:
        end = self.system.engine.now_ns
        try:
            for w in self.writers:
                w.close(end)
        finally:
            for fh in self._files:
                fh.close()
            self._files = []

    def abort(self) -> None:
        for fh in self._files:
            fh.close()
        self._files = []
