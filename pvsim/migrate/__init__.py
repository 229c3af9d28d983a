"""Live migration between simulated hosts: the per-page dirty model (:mod:`pvsim.migrate.dirty`),
the save engines of Xen (stream v2 and the legacy loop), QEMU and SimGrid (:mod:`pvsim.migrate.save`)
and their binding to a scenario (:mod:`pvsim.migrate.live`)."""
