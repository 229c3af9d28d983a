"""kernel-build's native characterisation (issue 12): the OS share of a native build on xeon-2003 is
6-8 % (SOSP'03 4.1: ~7 %), and each kernel item is what the profile's native costs say."""

import pytest

from pvsim.core.profile import load_profile
from pvsim.pricing import op_cost

P = load_profile("xeon-2003")


def test_kernel_items_match_a_hand_calculation():
    c = op_cost("kernel-build", "native", P).cycles
    exec_fill = op_cost("lmbench.exec", "native", P).cycles["kernel"]  # lmbench exec's path length (its fill)
    assert c["kernel"] == pytest.approx(4 * exec_fill + 2700 * 4096 + 2_750_000)
    assert c["kernel.syscall"] == pytest.approx(2504 * P.value("native.syscall_cycles"))
    assert c["kernel.page_fault"] == pytest.approx(4000 * P.value("native.page_fault_cycles"))
    assert c["user"] == 400_000_000


def test_native_os_share_on_xeon_2003_is_6_to_8_percent():
    c = op_cost("kernel-build", "native", P).cycles
    share = 1 - c["user"] / sum(c.values())
    assert 0.06 <= share <= 0.08, share
