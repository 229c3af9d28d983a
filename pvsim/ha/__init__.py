"""High availability: Remus-style checkpointing (:mod:`pvsim.ha.remus`), host failure with heartbeat
detection and restart elsewhere (:mod:`pvsim.ha.failover`), and their binding to a scenario
(:mod:`pvsim.ha.bind`)."""
