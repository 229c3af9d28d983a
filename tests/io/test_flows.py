"""The link as a flow model (pvsim.io.flows): max-min shares, one flow = the old FIFO pipe, two flows
share, a capped flow leaves its spare to the others, a late arrival moves the callbacks it slows."""

import math

import numpy as np
import pytest

from pvsim.core.engine import Engine
from pvsim.io.flows import Pipe, maxmin_shares, maxmin_shares_ref

INF = math.inf


@pytest.mark.parametrize("caps,want", [
    ([INF], [1.0]), ([INF, INF], [0.5, 0.5]), ([0.1, INF], [0.1, 0.9]), ([0.1, 0.2, INF], [0.1, 0.2, 0.7]),
    ([0.6, 0.6], [0.5, 0.5]), ([0.2, 0.2], [0.2, 0.2]), ([0.3, INF, INF], [0.3, 0.35, 0.35])])
def test_maxmin_shares(caps, want):
    assert maxmin_shares(caps) == pytest.approx(want)


def test_maxmin_against_water_filling():
    rng = np.random.default_rng(4)
    for _ in range(200):
        n = int(rng.integers(1, 7))
        caps = [INF if rng.random() < 0.3 else float(rng.random()) for _ in range(n)]
        got = maxmin_shares(caps)
        assert got == pytest.approx(maxmin_shares_ref(caps), abs=1e-9)
        assert sum(got) <= 1 + 1e-12 and all(g <= c + 1e-12 for g, c in zip(got, caps))


def _fifo(sends, rate_mbps, latency_ns):
    """The pipe this replaces: FIFO serialisation at the link rate, then the latency."""
    free, out = 0, []
    for at, nbytes in sends:
        start = max(at, free)
        free = start + max(1, int(nbytes * 8 / (rate_mbps / 1e3)))
        out.append(free + latency_ns)
    return out


def _run(pipe_sends, rate=1000.0, lat_us=20.0, caps=None):
    """``pipe_sends``: (at_ns, nbytes, flow); returns when each arrived (done) and was serialised."""
    e = Engine(seed=0)
    p = Pipe(e, rate, lat_us)
    for f, c in (caps or {}).items():
        p.limit(f, c)
    done, ser = {}, {}
    for i, (at, nb, flow) in enumerate(pipe_sends):
        def go(i=i, at=at, nb=nb, flow=flow):
            yield e.timeout_ns(at)
            p.send(nb, lambda: done.setdefault(i, []).append(e.now_ns), flow=flow,
                   serialised=lambda: ser.setdefault(i, []).append(e.now_ns))
        e.process(go())
    e.run()
    return p, done, ser


def test_one_flow_is_the_fifo_pipe():
    rng = np.random.default_rng(7)
    at = np.sort(rng.integers(0, 5_000_000, 60))
    nb = rng.integers(0, 200_000, 60)
    sends = [(int(a), int(b)) for a, b in zip(at, nb)]
    p, done, ser = _run([(a, b, None) for a, b in sends])
    want = _fifo(sends, 1000.0, 20_000)
    assert [done[i] for i in range(60)] == [[w] for w in want]  # each called once, at the old time
    assert [ser[i][0] for i in range(60)] == [w - 20_000 for w in want]
    assert p.max_flows == 1 and p.bytes == int(nb.sum())


def test_two_flows_each_get_half():
    mb = 1_000_000
    alone = _run([(0, mb, "a")])[1][0][0]
    p, done, _ = _run([(0, mb, "a"), (0, mb, "b")])
    assert done[0][0] == pytest.approx(2 * (alone - 20_000) + 20_000, abs=2)
    assert done[1][0] == pytest.approx(done[0][0], abs=2)
    assert p.flow_bytes == {"a": mb, "b": mb} and p.bytes == 2 * mb and p.max_flows == 2


def test_capped_flow_leaves_its_spare_to_the_other():
    mb = 1_000_000  # 8 ms alone at 1 Gbit/s
    _p, done, _ = _run([(0, mb, "capped"), (0, mb, "free")], caps={"capped": 200.0})
    # while both run: capped at 200 Mbit/s, the other gets the 800 left (not 500)
    assert done[1][0] - 20_000 == pytest.approx(mb * 8 / 0.8, abs=2)
    # then the capped one stays at its cap though the link is free
    assert done[0][0] - 20_000 == pytest.approx(mb * 8 / 0.2, abs=2)


def test_a_late_flow_moves_the_first_ones_end_and_fires_it_once():
    mb = 1_000_000
    _p, done, ser = _run([(0, mb, "a"), (4_000_000, mb, "b")])  # b arrives half way through a
    # a: 4 ms alone (half), then the other half at half rate: 8 ms more
    assert done[0] == [12_000_000 + 20_000] and ser[0] == [12_000_000]
    # b: half done by 12 ms, then alone: 4 ms more
    assert done[1] == [16_000_000 + 20_000]


def test_a_flow_queues_its_own_transfers_in_order():
    _p, done, _ = _run([(0, 500_000, "a"), (0, 500_000, "a"), (0, 1_000_000, "b")])
    # a's two halves in order, each sharing the link with b: a ends with b, at 16 ms
    assert done[0][0] < done[1][0] == pytest.approx(done[2][0], abs=2)
    assert done[2][0] == pytest.approx(16_000_000 + 20_000, abs=2)
