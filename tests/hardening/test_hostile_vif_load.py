"""A hostile vif under network load (issue 16): a victim runs ttcp or netperf through the same
Domain-0 while a hostile netfront puts malformed requests on its tx ring; the hostile vif is closed,
the victim's network I/O completes and the run ends normally.

The bug this guards: Domain-0's netback threads share its vCPU, and an interrupt (the NIC's, an
event-channel upcall) restarted the interrupted thread's CFS turn, so under a steady stream of
interrupts the victim's busy netback thread never gave the vCPU up and the hostile vif's thread --
woken, runnable -- never ran to check (and refuse) its requests."""

from __future__ import annotations

import pytest
from test_hostile_frontend import NET_ATTACKS, at, kick, run_with_attack, setup

LOADS = ["ttcp-1500", "netperf-rr"]
ATTACKS = ["tx_size_big", "tx_not_a_tuple", "tx_gref_none"]


@pytest.mark.parametrize("attack_kind", ATTACKS)
@pytest.mark.parametrize("load", LOADS)
def test_hostile_vif_closed_while_the_victim_streams(load, attack_kind):
    system, victim, hostile = setup(load)
    net = hostile.net
    assert victim.net is not None and victim.net.nic is net.nic  # the same Domain-0 and NIC
    seen = {}

    def attack():
        req = NET_ATTACKS[attack_kind]
        if isinstance(req, tuple) and len(req) == 4 and req[1] is None:
            req = (req[0], net.fgt.grant_access(0, 0x77, readonly=True), req[2], req[3])
        net.txf.put_request(req)
        net.txf.push_requests()
        kick(hostile, net.front_port)
        seen["t"] = system.engine.now_ns

    def soon():  # refused within 200 us, not only once the victim's stream pauses
        seen["closed_soon"] = net.closed

    at(system, 2_200_000, soon)
    res = run_with_attack(system, victim, hostile, net, attack)
    assert seen["closed_soon"], "the hostile vif's netback did not run while the victim streamed"
    row = next(r for r in res.rows if r["domain"] == "victim")
    assert row["value"] > 0
