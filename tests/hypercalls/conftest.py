"""Fixtures for the hypercall ABI and core/memory handler tests.

No ``__init__.py`` here on purpose: a package called ``hypercalls`` under ``tests/`` would shadow
the real :mod:`hypercalls` package.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hypercalls import table as T
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor


@dataclass
class FakeClock:
    """Stands in for :class:`pvsim.core.engine.Engine`: the handlers only read ``now_ns``."""

    now_ns: int = 1_000_000_000


def build_hv(now_ns: int = 1_000_000_000, *, subsystems: bool = False) -> Hypervisor:
    """dom0 (privileged pv64), a pv64 domU, a pv32 domU and an hvm64 domU. With
    ``subsystems``, pvsim.mm's machine memory, event channels and grant tables are attached."""
    hv = Hypervisor(engine=FakeClock(now_ns))
    hv.add_domain(Domain(0, "dom0", "pv", "pv64", nr_vcpus=2, tot_pages=300, max_pages=4000,
                         privileged=True))
    hv.add_domain(Domain(1, "pvu", "pv", "pv64", nr_vcpus=2, tot_pages=100, max_pages=120))
    hv.add_domain(Domain(2, "pv32u", "pv32", "pv32", nr_vcpus=1, tot_pages=100, max_pages=120))
    hv.add_domain(Domain(3, "hvmu", "hvm", "hvm64", nr_vcpus=2, tot_pages=100, max_pages=120))
    if subsystems:
        from pvsim.io.evtchn import evtchn_for
        from pvsim.io.gnttab import gnttab_for
        from pvsim.mm.host import add_domain_memory, attach_machine_memory

        attach_machine_memory(hv, 2048)
        for d in hv.domains.values():
            add_domain_memory(hv, d, d.tot_pages)
            evtchn_for(d)
            gnttab_for(d)
    return hv


@pytest.fixture
def hv() -> Hypervisor:
    return build_hv()


class Caller:
    """``call("name", *args)`` as a given domain's vCPU."""

    def __init__(self, hv: Hypervisor, domid: int, vcpu: int = 0):
        self.hv = hv
        self.dom = hv.domains[domid]
        self.vcpu = self.dom.vcpus[vcpu]

    def __call__(self, name: str, *args) -> int:
        return self.hv.hypercall(self.vcpu, T.number(name), *args)


@pytest.fixture
def dom0(hv) -> Caller:
    return Caller(hv, 0)


@pytest.fixture
def pvu(hv) -> Caller:
    return Caller(hv, 1)


@pytest.fixture
def pv32(hv) -> Caller:
    return Caller(hv, 2)


@pytest.fixture
def hvm(hv) -> Caller:
    return Caller(hv, 3)
