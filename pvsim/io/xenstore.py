"""A simulated xenstore and the XenBus device handshake (``xen/include/public/io/xenbus.h``,
``xs_wire.h``, the state diagram in ``blkif.h``).

Design note
-----------
:class:`XenStore` is a path -> string map with watches (``XS_WRITE`` fires every watch whose path
is a prefix of the written node, as ``xenstored`` does). :class:`XenbusDevice` drives one
frontend/backend pair through ``enum xenbus_state``: the toolstack creates both nodes in
*Initialising*; the backend publishes its features and goes to *InitWait*; the frontend grants its
ring page(s), allocates an unbound event channel (``EVTCHNOP_alloc_unbound``), publishes
``ring-ref``/``event-channel``/``protocol`` and goes to *Initialised*; the backend maps the ring
grant (``GNTTABOP_map_grant_ref``), binds the channel (``EVTCHNOP_bind_interdomain``), publishes
device properties and goes to *Connected*; the frontend then goes to *Connected*. Teardown:
*Closing* then *Closed* on both sides, then the backend unmaps the ring and closes its port.
Every hypercall goes through ``Hypervisor.hypercall``, so the handshake is priced and counted.

Simplifications: no transactions (single-threaded simulation makes them atomic); the xenstore
ring transport itself (two 1024-byte rings) is not simulated; handshake steps take zero time.
"""

from __future__ import annotations

from collections import defaultdict

from hypercalls import args as A
from hypercalls import ops as O
from hypercalls.ops import DOMID_SELF
from hypercalls.table import HYPERVISOR_event_channel_op, HYPERVISOR_grant_table_op
from pvsim.io import gnttab as gt

# enum xenbus_state (xenbus.h)
XenbusStateUnknown = 0
XenbusStateInitialising = 1
XenbusStateInitWait = 2
XenbusStateInitialised = 3
XenbusStateConnected = 4
XenbusStateClosing = 5
XenbusStateClosed = 6
XenbusStateReconfiguring = 7
XenbusStateReconfigured = 8
STATE_NAMES = {0: "Unknown", 1: "Initialising", 2: "InitWait", 3: "Initialised", 4: "Connected",
               5: "Closing", 6: "Closed", 7: "Reconfiguring", 8: "Reconfigured"}
XENSTORE_RING_SIZE = 1024
XENSTORE_PAYLOAD_MAX = 4096


class XenStore:
    def __init__(self):
        self.nodes: dict[str, str] = {}
        self.watches: dict[str, list] = defaultdict(list)
        self.log: list[tuple[str, str]] = []

    def write(self, path: str, value) -> None:
        value = str(value)
        if len(value) > XENSTORE_PAYLOAD_MAX:
            raise ValueError("xenstore payload too large")
        self.nodes[path] = value
        self.log.append((path, value))
        for wpath, fns in list(self.watches.items()):
            if path == wpath or path.startswith(wpath + "/"):
                for fn in list(fns):
                    fn(path)

    def read(self, path: str, default=None):
        return self.nodes.get(path, default)

    def directory(self, path: str) -> list[str]:
        pre = path.rstrip("/") + "/"
        return sorted({k[len(pre):].split("/")[0] for k in self.nodes if k.startswith(pre)})

    def watch(self, path: str, fn) -> None:
        self.watches[path].append(fn)

    def rm(self, path: str) -> None:
        for k in [k for k in self.nodes if k == path or k.startswith(path + "/")]:
            del self.nodes[k]


class XenbusDevice:
    """One split device (``vbd`` or ``vif``) between ``front`` (domU) and ``back`` (dom0)."""

    def __init__(self, xs: XenStore, hv, kind: str, front, back, devid: int, front_os, back_os,
                 ring_pages: int = 1, features: dict | None = None):
        self.xs, self.hv, self.kind = xs, hv, kind
        self.front, self.back, self.devid = front, back, devid
        self.front_os, self.back_os = front_os, back_os
        self.fpath = f"/local/domain/{front.domid}/device/{kind}/{devid}"
        self.bpath = f"/local/domain/{back.domid}/backend/{kind}/{front.domid}/{devid}"
        self.ring_pages = ring_pages
        self.features = dict(features or {})
        self.ring_refs: list[int] = []
        self.ring_handles: list[int] = []
        self.front_port = 0
        self.back_port = 0
        self.history: list[tuple[str, str]] = []
        # toolstack: create both nodes in Initialising
        xs.write(f"{self.fpath}/backend", self.bpath)
        xs.write(f"{self.fpath}/backend-id", back.domid)
        xs.write(f"{self.bpath}/frontend", self.fpath)
        xs.write(f"{self.bpath}/frontend-id", front.domid)
        self._set("front", XenbusStateInitialising)
        self._set("back", XenbusStateInitialising)

    def state(self, side: str) -> int:
        return int(self.xs.read(f"{self.fpath if side == 'front' else self.bpath}/state", 0))

    def _set(self, side: str, st: int) -> None:
        self.history.append((side, STATE_NAMES[st]))
        self.xs.write(f"{self.fpath if side == 'front' else self.bpath}/state", st)

    def connect(self) -> bool:
        """Run the handshake; returns True when both ends are Connected."""
        xs = self.xs
        # 2. backend publishes features and limits -> InitWait
        for k, v in self.features.items():
            xs.write(f"{self.bpath}/{k}", v)
        if self.ring_pages > 1:
            xs.write(f"{self.bpath}/max-ring-page-order", (self.ring_pages - 1).bit_length())
        self._set("back", XenbusStateInitWait)
        # 3. frontend grants ring page(s), allocates an unbound port, publishes -> Initialised
        fgt = gt.gnttab_for(self.front)
        self.ring_refs = [fgt.grant_access(self.back.domid, 0x8000 + i) for i in range(self.ring_pages)]
        self.front_os.work("io.grant", "io.grant_entry_cycles", self.ring_pages)
        a = A.EvtchnAllocUnbound(DOMID_SELF, self.back.domid)
        if self.front_os.hypercall(HYPERVISOR_event_channel_op, O.EVTCHNOP_alloc_unbound, a) != 0:
            return False
        self.front_port = a.port
        if self.ring_pages == 1:
            xs.write(f"{self.fpath}/ring-ref", self.ring_refs[0])
        else:
            xs.write(f"{self.fpath}/ring-page-order", (self.ring_pages - 1).bit_length())
            for i, r in enumerate(self.ring_refs):
                xs.write(f"{self.fpath}/ring-ref{i}", r)
        xs.write(f"{self.fpath}/event-channel", self.front_port)
        xs.write(f"{self.fpath}/protocol", "x86_64-abi")
        self._set("front", XenbusStateInitialised)
        # 4. backend maps the ring, binds the port, publishes properties -> Connected
        refs = [int(xs.read(f"{self.fpath}/ring-ref"))] if self.ring_pages == 1 else \
            [int(xs.read(f"{self.fpath}/ring-ref{i}")) for i in range(self.ring_pages)]
        ops = [A.GnttabMapGrantRef(0x7000_0000 + 0x1000 * i, O.GNTMAP_host_map, r, self.front.domid)
               for i, r in enumerate(refs)]
        self.back_os.hypercall(HYPERVISOR_grant_table_op, O.GNTTABOP_map_grant_ref, ops, len(ops))
        if any(o.status != O.GNTST_okay for o in ops):
            self._set("back", XenbusStateClosing)
            return False
        self.ring_handles = [o.handle for o in ops]
        b = A.EvtchnBindInterdomain(self.front.domid, int(xs.read(f"{self.fpath}/event-channel")))
        if self.back_os.hypercall(HYPERVISOR_event_channel_op, O.EVTCHNOP_bind_interdomain, b) != 0:
            self._set("back", XenbusStateClosing)
            return False
        self.back_port = b.local_port
        if self.kind == "vbd":
            xs.write(f"{self.bpath}/sectors", self.features.get("sectors", 0))
            xs.write(f"{self.bpath}/sector-size", 512)
            xs.write(f"{self.bpath}/info", 0)
        self._set("back", XenbusStateConnected)
        # 5. frontend reads the properties -> Connected
        self._set("front", XenbusStateConnected)
        return True

    def close(self, reason: str = "") -> None:
        """Teardown (either side may start it): Closing -> Closed, then unmap and unbind."""
        if self.state("back") == XenbusStateClosed:
            return
        if reason:
            self.xs.write(f"{self.bpath}/error", reason)
        self._set("back", XenbusStateClosing)
        self._set("front", XenbusStateClosing)
        self._set("front", XenbusStateClosed)
        if self.ring_handles:
            ops = [A.GnttabUnmapGrantRef(0, 0, h) for h in self.ring_handles]
            self.back_os.hypercall(HYPERVISOR_grant_table_op, O.GNTTABOP_unmap_grant_ref, ops, len(ops))
            self.ring_handles = []
        if self.back_port:
            self.back_os.hypercall(HYPERVISOR_event_channel_op, O.EVTCHNOP_close, A.EvtchnClose(self.back_port))
            self.back_port = 0
        self._set("back", XenbusStateClosed)
