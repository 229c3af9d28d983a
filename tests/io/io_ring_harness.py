"""A two-party ring driver for the property tests: frontend and backend as interleavable steps.

Each action is one atomic step of one party. The consumer's "final check before going idle" takes a
``race`` count: that many requests (or responses) are pushed by the other side *between* the
consumer's first check and its arming of the event index, which is exactly the window that
``RING_FINAL_CHECK_FOR_*``'s re-check closes.
"""

from __future__ import annotations

from pvsim.io.ring import BackRing, FrontRing, SharedRing


class Harness:
    def __init__(self, size: int, start: int, back_cls=BackRing, front_cls=FrontRing):
        self.s = SharedRing(size, start=start)
        self.front = front_cls(self.s)
        self.back = back_cls(self.s)
        self.back_awake = False
        self.back_event = False
        self.front_awake = False
        self.front_event = False
        self.next_id = 0
        self.issued: set[int] = set()
        self.done: list[int] = []
        self.back_pending: list[int] = []  # requests copied out, response not yet written
        self.violations: list[str] = []
        self.notifies = 0

    # -------------------------------------------------------------- frontend
    def push(self, k: int) -> None:
        n = min(k, self.front.free_requests())
        for _ in range(n):
            self.front.put_request(self.next_id)
            self.issued.add(self.next_id)
            self.next_id += 1
        if n and self.front.push_requests_and_check_notify():
            self.back_event = True
            self.notifies += 1

    def front_wake(self) -> None:
        if self.front_event:
            self.front_event, self.front_awake = False, True

    def front_rsp(self, n: int) -> None:
        if not self.front_awake:
            return
        for _ in range(min(n, self.front.has_unconsumed_responses())):
            rid = self.front.get_response()
            if rid not in self.issued:
                self.violations.append(f"response id {rid} was never issued")
            elif rid in self.done:
                self.violations.append(f"response id {rid} duplicated")
            self.done.append(rid)

    def front_idle(self, race: int) -> None:
        if not self.front_awake:
            return
        work = self.front.final_check_for_responses(between=(lambda: self.respond(race)) if race else None)
        if not work:
            self.front_awake = False
            if self.front.has_unconsumed_responses() and not self.front_event:
                self.violations.append("frontend asleep with unconsumed responses and no event")

    # -------------------------------------------------------------- backend
    def back_wake(self) -> None:
        if self.back_event:
            self.back_event, self.back_awake = False, True

    def consume(self, n: int) -> None:
        if not self.back_awake:
            return
        for _ in range(min(n, self.back.has_unconsumed_requests())):
            self.back_pending.append(self.back.get_request())

    def respond(self, n: int) -> None:
        k = min(n, len(self.back_pending))
        for _ in range(k):
            self.back.put_response(self.back_pending.pop(0))
        if k and self.back.push_responses_and_check_notify():
            self.front_event = True
            self.notifies += 1

    def back_idle(self, race: int) -> None:
        if not self.back_awake:
            return
        if self.back_pending:  # a backend finishes its in-flight work before going idle
            self.respond(len(self.back_pending))
        work = self.back.final_check_for_requests(between=(lambda: self.push(race)) if race else None)
        if not work:
            self.back_awake = False
            if self.back.has_unconsumed_requests() and not self.back_event:
                self.violations.append("backend asleep with unconsumed requests and no event")

    # -------------------------------------------------------------- driver
    def step(self, action) -> None:
        kind, arg = action
        getattr(self, kind)(arg) if kind not in ("front_wake", "back_wake") else getattr(self, kind)()

    def quiesce(self, limit: int = 10_000) -> None:
        """Let both sides run to completion with no more races; only events wake a sleeper."""
        for _ in range(limit):
            moved = False
            if self.back_event:
                self.back_wake()
                moved = True
            if self.back_awake:
                self.consume(10**9)
                self.back_idle(0)
                moved = True
            if self.front_event:
                self.front_wake()
                moved = True
            if self.front_awake:
                self.front_rsp(10**9)
                self.front_idle(0)
                moved = True
            if not moved:
                break
        lost = self.issued - set(self.done)
        if lost:
            self.violations.append(f"{len(lost)} requests never completed (stalled ring)")
        if len(self.done) != len(set(self.done)):
            self.violations.append("duplicate completions")


def run_actions(actions, size: int = 8, start: int = 0, back_cls=BackRing, front_cls=FrontRing) -> Harness:
    h = Harness(size, start, back_cls, front_cls)
    for a in actions:
        h.step(a)
    h.quiesce()
    return h
