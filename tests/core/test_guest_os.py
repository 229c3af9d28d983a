"""The guest OS's vCPU (guest_kernels.os.VcpuOS): interrupts cut long Runs short and the cut work
resumes whole; CFS switch points cut a long Run where a runnable thread is due."""

from guest_kernels.os import THREAD_SLICE_NS, DomainOS
from pvsim.core.engine import Engine, Run, Wait
from pvsim.core.meter import Meter, Pricer
from pvsim.core.profile import load_profile

MS = 1_000_000


class _Plat:
    def __init__(self):
        self.interrupts = 0
        self.block = False

    def interrupt(self):
        self.interrupts += 1

    def kick(self):
        pass

    def blocking(self):
        return False

    def cancel_block(self):
        pass


class _Kernel:
    def __init__(self):
        self.p = _Plat()

    def idle(self):
        pass

    def irq(self, source):
        pass


class _HV:
    meter = Meter()


def _os():
    e = Engine(seed=0)
    k = _Kernel()
    dos = DomainOS("g", None, e, _HV(), [k], Pricer(load_profile("modern")))
    return e, dos, dos.vcpus[0], k.p


def _hog(ns, units):
    while True:
        yield ("run", ns, units)


def test_irq_cuts_a_burst_then_the_rest_resumes_and_units_count_once():
    e, dos, v, plat = _os()
    v.spawn(_hog(10 * MS, 5.0))
    assert v.next(0) == Run(10 * MS)
    ran = []
    before = plat.interrupts
    v.raise_irq(lambda: iter([("run", 0)]) if ran.append(1) is None else None)
    assert plat.interrupts == before + 1  # the platform asked the dispatcher to cut the Run
    assert v.preempt(7 * MS)  # the dispatcher cut it at 3 ms
    assert abs(v.units_in_flight(7 * MS) - 1.5) < 1e-12
    d = v.next(3 * MS)  # the handler runs first (zero time), then the rest of the burst
    assert ran == [1] and d == Run(7 * MS)
    assert dos.units == 0
    assert v.next(10 * MS) == Run(10 * MS) and dos.units == 5.0  # the burst's units, once


def test_no_cut_while_an_interrupt_handler_runs():
    e, dos, v, plat = _os()

    def handler():
        yield ("run", 5 * MS)

    v.raise_irq(handler)
    assert v.next(0) == Run(5 * MS)
    assert not v.preempt(MS)


def test_cfs_switch_point_cuts_a_long_run_when_another_thread_is_runnable():
    e, dos, v, plat = _os()
    v.spawn(_hog(10 * MS, 1.0))
    v.spawn(_hog(10 * MS, 1.0))
    assert v.next(0) == Run(THREAD_SLICE_NS)  # cut at the slice: the other thread is runnable
    assert v.next(THREAD_SLICE_NS) == Run(THREAD_SLICE_NS)  # the other thread's slice
    assert v.next(2 * THREAD_SLICE_NS) == Run(THREAD_SLICE_NS)  # the first resumes its rest
    assert dos.units == 0


def test_waiting_thread_then_idle():
    e, dos, v, plat = _os()
    ev = e.event()

    def t():
        yield ("iowait", ev)

    v.spawn(t())
    d = v.next(0)
    assert isinstance(d, Wait)
