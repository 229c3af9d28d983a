"""Split-driver I/O as Xen does it, and the devices around it.

* The ABI (``EVTCHNOP_*``, ``GNTTABOP_*``, ``GTF_*``, ``GNTST_*``, argument records) is
  :mod:`hypercalls.ops` / :mod:`hypercalls.args`; hypercall numbers :mod:`hypercalls.table`.
* :mod:`pvsim.io.evtchn`: event channels, 2-level ABI (``do_event_channel_op`` in
  :mod:`pvsim.hypervisor.handlers.evtchn`).
* :mod:`pvsim.io.gnttab`: grant tables v1 (``do_grant_table_op`` in
  :mod:`pvsim.hypervisor.handlers.gnttab`).
* :mod:`pvsim.io.ring`: ``ring.h`` shared rings with Xen's exact index semantics.
* :mod:`pvsim.io.xenstore`: xenstore and the XenBus handshake.
* :mod:`pvsim.io.devices`: disk (rotational/SSD), NIC + wire, the outside peer, bridge, links, shared storage.
* :mod:`pvsim.io.paths`: native, split-driver (Xen and virtio) and emulated device paths, and the
  registry of device kinds the mode table names (``DEVICE_PATHS``).

The builder (:mod:`pvsim.system`) connects them to the domains' OSes. See ``docs/io.md``.
"""
