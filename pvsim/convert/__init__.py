"""P2V, V2V and V2P conversions on the block model of :mod:`pvsim.ha.disk` (:mod:`pvsim.convert.model`)."""
