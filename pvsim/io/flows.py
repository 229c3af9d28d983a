"""One direction of a link as a fluid flow model with max-min fair (TCP-like) sharing.

Design note
-----------
A :class:`Pipe` carries *flows*: a migration stream (one long flow, its batches queued in order),
a guest's network stream crossing the link (one flow: what its NIC queue holds, at the rate the
guest offers it), and the default flow of everything sent without a flow (FIFO, as the link was
before: the requests of shared storage). Each flow serialises its own transfers in order; the
flows active at a moment (those with bytes queued) share the link by **max-min fairness**
(Bertsekas & Gallager, *Data Networks*, 2nd ed., §6.5.2: progressive filling): every active flow
gets an equal share, a flow capped by its own limit (:meth:`Pipe.limit`) gets no more than its cap,
and what it leaves is shared equally by the others. This is the fluid model SimGrid uses for TCP
(the ``CM02`` network model of Casanova & Marchal, 2002; SimGrid's LMM solver), here on one link,
where max-min reduces to :func:`maxmin_shares`.

Shares are recomputed only when a flow arrives (a transfer is queued: :meth:`Pipe.send`) or leaves
(its last queued transfer ends): between those moments every rate is constant, so the time each
queued transfer ends is computed in closed form by :meth:`Pipe._project` (the fluid run forward to
the end of every backlog, assuming nothing else arrives), and one timeout per callback is set; a
later arrival re-projects and moves the callbacks of the transfers it slows (a stale timeout is
ignored). No SimPy event stands for a packet or a rate step. With one flow on the link every
transfer ends at ``max(now, previous end) + max(1, int(8 * bytes / rate))``, exactly the FIFO pipe
this replaces, so a link that no two flows share gives byte-identical results. The arithmetic is per
flow (a handful at a time) and per decision, so it is plain Python, not a compiled kernel.

Simplifications: no TCP slow start, congestion window or loss (a flow is at its fair share from its
first byte); no RTT unfairness (every flow on a link sees the same latency and gets the same share,
as CM02 gives flows of equal latency); one link, so no multi-hop bottleneck; the latency is added
after the serialisation (store and forward of each transfer); a rate limit set by a sender's own
pacing (QEMU's ``max-bandwidth``, the NSDI'05 adaptive rate) is the sender's business: it makes the
flow idle part of the time, and max-min gives the link to the others meanwhile.
"""

from __future__ import annotations

import functools
import math
from collections import deque

_EPS = 1e-6  # ns of fluid time / ns of full-rate work treated as zero (float noise of the fluid run)


def maxmin_shares(caps) -> list[float]:
    """Max-min fair shares of one link among flows with ``caps`` (fractions of the link rate,
    ``math.inf`` for none), by progressive filling: the most tightly capped flow first takes
    ``min(cap, what is left / flows left)``; the rest share what it leaves."""
    n = len(caps)
    out = [0.0] * n
    left = 1.0
    for k, i in enumerate(sorted(range(n), key=lambda j: caps[j])):
        s = min(caps[i], left / (n - k))
        out[i] = s
        left -= s
    return out


def maxmin_shares_ref(caps) -> list[float]:
    """The same shares by water-filling on a level: raise one common level until the link is full;
    each flow gets ``min(cap, level)`` (an independent formulation, for the tests)."""
    caps = list(caps)
    if not caps:
        return []
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if sum(min(c, mid) for c in caps) > 1.0:
            hi = mid
        else:
            lo = mid
    return [min(c, lo) for c in caps]


class Transfer:
    """``nbytes`` of one flow on a :class:`Pipe`. ``end_ns`` is when its serialisation ends, as the
    link predicts it now (it moves later if another flow starts sharing the link before then);
    ``arrive_ns`` adds the latency."""

    __slots__ = ("flow", "nbytes", "work", "end_f", "end_ns", "latency_ns", "serialised", "done", "_token")

    def __init__(self, flow, nbytes: int, work: int, latency_ns: int, serialised, done):
        self.flow, self.nbytes, self.work, self.latency_ns = flow, nbytes, work, latency_ns
        self.serialised, self.done = serialised, done
        self.end_f = 0.0
        self.end_ns = -1
        self._token = 0

    @property
    def arrive_ns(self) -> int:
        return self.end_ns + self.latency_ns


class _Flow:
    __slots__ = ("key", "cap", "queue", "left")

    def __init__(self, key, cap: float):
        self.key, self.cap = key, cap
        self.queue: deque = deque()
        self.left = 0.0  # full-rate ns of work left in the head transfer, at Pipe._t


class Pipe:
    """One direction of a link: the flows on it share its rate max-min fairly (module note), then
    the propagation latency. ``send(nbytes, done)`` without a flow is the FIFO default flow."""

    def __init__(self, engine, rate_mbps: float, latency_us: float):
        self.engine = engine
        self.rate_bits_per_ns = float(rate_mbps) / 1e3
        self.latency_ns = int(latency_us * 1000)
        self.bytes = 0
        self.flow_bytes: dict = {}  # bytes sent per flow key (None: the default flow)
        self.max_flows = 0  # most flows active at once (1: the link was never shared)
        self._caps: dict = {}
        self._active: dict = {}  # flow key -> _Flow with something queued, in arrival order
        self._t = 0
        self.dead = False  # cut, or an end failed (pvsim.ha.inrun): what is sent or on the wire is lost
        self.dropped = 0

    def ser_ns(self, nbytes: int) -> int:
        """Serialisation of ``nbytes`` at the full link rate (what one flow alone takes)."""
        return max(1, int(nbytes * 8 / self.rate_bits_per_ns))

    def limit(self, flow, rate_mbps: float | None) -> None:
        """Cap ``flow`` at ``rate_mbps`` (None: no cap); takes effect for the shares from now on."""
        self._advance(self.engine.now_ns)
        cap = math.inf if rate_mbps is None else max(1e-12, float(rate_mbps) / 1e3 / self.rate_bits_per_ns)
        self._caps[flow] = cap
        if flow in self._active:
            self._active[flow].cap = cap
            self._project()

    def send(self, nbytes: int, done=None, *, flow=None, serialised=None) -> Transfer:
        """Queue ``nbytes`` on ``flow``; ``serialised()`` is called when its last bit is on the wire,
        ``done()`` when it has arrived at the other end. Returns the :class:`Transfer`."""
        now = self.engine.now_ns
        if self.dead:  # nothing leaves: the transfer is lost (its end is now, it never arrives)
            self.dropped += 1
            tx = Transfer(flow, int(nbytes), self.ser_ns(nbytes), self.latency_ns, None, None)
            tx.end_ns = now
            return tx
        if done is not None:
            done = functools.partial(self._deliver, done)
        self._advance(now)
        f = self._active.get(flow)
        tx = Transfer(flow, int(nbytes), self.ser_ns(nbytes), self.latency_ns, serialised, done)
        if f is None:
            f = self._active[flow] = _Flow(flow, self._caps.get(flow, math.inf))
            f.left = float(tx.work)
            self.max_flows = max(self.max_flows, len(self._active))
        solo = len(self._active) == 1 and f.cap == math.inf  # alone on the link at its full rate
        f.queue.append(tx)
        self.bytes += tx.nbytes
        self.flow_bytes[flow] = self.flow_bytes.get(flow, 0) + tx.nbytes
        if solo:  # the FIFO pipe: after what the flow already has queued (no other end moves)
            self._place(tx, (f.queue[-2].end_f if len(f.queue) > 1 else float(now)) + tx.work)
        else:
            self._project()
        return tx

    def _deliver(self, done) -> None:
        if self.dead:  # cut while on the wire
            self.dropped += 1
        else:
            done()

    def active_flows(self) -> int:
        self._advance(self.engine.now_ns)
        return len(self._active)

    # ---------------------------------------------------------------- the fluid run
    @staticmethod
    def _step(flows, lefts, t: float, until: float, record):
        """Run the fluid from ``t`` to ``until`` over ``flows`` (lists of queued transfers, heads first,
        consumed in place) with ``lefts`` the heads' remaining work; ``record(tx, t_end)`` for each
        transfer that ends. Returns the time reached."""
        while flows:
            shares = maxmin_shares([c for c, _q in flows])
            dt = min(lefts[i] / shares[i] for i in range(len(flows)))
            if t + dt > until + _EPS:
                step = until - t
                for i in range(len(flows)):
                    lefts[i] -= step * shares[i]
                return until
            t += dt
            keep_f, keep_l = [], []
            for i, (cap, q) in enumerate(flows):
                left = lefts[i] - dt * shares[i]
                if left <= _EPS * max(1.0, q[0].work):
                    record(q.popleft(), t)
                    if not q:
                        continue
                    left = float(q[0].work)
                keep_f.append((cap, q))
                keep_l.append(left)
            flows[:], lefts[:] = keep_f, keep_l
        return t

    def _advance(self, now: int) -> None:
        """Bring the fluid state to ``now``: the transfers that ended are dropped (their callbacks
        are already set)."""
        if now <= self._t or not self._active:
            self._t = max(self._t, now)
            return
        fl = list(self._active.values())
        if len(fl) == 1 and fl[0].cap == math.inf:  # alone at full rate: the projected ends are exact
            f = fl[0]
            while f.queue and f.queue[0].end_f <= now + _EPS:
                f.queue.popleft()
            if f.queue:
                f.left = f.queue[0].end_f - now
            else:
                del self._active[f.key]
            self._t = now
            return
        flows = [(f.cap, f.queue) for f in fl]
        lefts = [f.left for f in fl]
        self._step(flows, lefts, float(self._t), float(now), lambda _tx, _t: None)
        alive = {id(q): left for (_c, q), left in zip(flows, lefts)}
        for f in fl:
            if id(f.queue) in alive:
                f.left = alive[id(f.queue)]
            else:
                del self._active[f.key]
        self._t = now

    def _project(self) -> None:
        """The end of every queued transfer if nothing else arrives; (re)set the callbacks of those
        whose end moved."""
        fl = list(self._active.values())
        flows = [(f.cap, deque(f.queue)) for f in fl]
        lefts = [f.left for f in fl]
        self._step(flows, lefts, float(self._t), math.inf, self._place)

    def _place(self, tx: Transfer, t_end: float) -> None:
        end = max(self._t, int(math.ceil(t_end - _EPS)))
        tx.end_f = t_end
        if end == tx.end_ns:
            return
        tx.end_ns = end
        tx._token += 1
        now = self.engine.now_ns
        if tx.serialised is not None:
            self.engine.timeout_ns(end - now).callbacks.append(lambda _e, tx=tx, k=tx._token: self._fire(tx, k, 0))
        if tx.done is not None:
            self.engine.timeout_ns(end - now + tx.latency_ns).callbacks.append(
                lambda _e, tx=tx, k=tx._token: self._fire(tx, k, 1))

    @staticmethod
    def _fire(tx: Transfer, token: int, which: int) -> None:
        if token == tx._token:
            (tx.done if which else tx.serialised)()
