"""Unit tests of the engine, meter, profiles, import direction and dispatcher basics."""

import ast
from pathlib import Path

import pytest

from pvsim.core.engine import Engine, rng_for
from pvsim.core.errors import ScenarioError
from pvsim.core.meter import Meter
from pvsim.core.profile import bundled_profiles, load_profile

ROOT = Path(__file__).resolve().parents[2]


def test_engine_integer_time_only():
    e = Engine(seed=1)
    with pytest.raises(TypeError):
        e.timeout_ns(1.5)
    seen = []

    def proc():
        yield e.timeout_ns(10)
        seen.append(e.now_ns)

    e.process(proc())
    e.run()
    assert seen == [10] and isinstance(e.now_ns, int)


def test_rng_streams_independent_and_stable():
    a1 = rng_for(5, "a").integers(0, 1 << 30, 4)
    a2 = rng_for(5, "a").integers(0, 1 << 30, 4)
    b = rng_for(5, "b").integers(0, 1 << 30, 4)
    assert (a1 == a2).all() and not (a1 == b).all()


def test_meter_prices_through_profile():
    p = load_profile("p4-2006")
    m = Meter()
    m.add("exit.cpuid", "hvm.vmexit_cycles")
    m.add("user", "cycles", 100)
    assert m.price(p) == {"exit.cpuid": 1931, "user": 100}


@pytest.mark.parametrize("name", bundled_profiles())
def test_every_constant_cites_a_source(name):
    p = load_profile(name)
    assert p.constants
    for key, c in p.constants.items():
        assert c.source.strip(), key
        assert len(c.source) > 15, f"{key}: source too thin: {c.source!r}"


def test_user_profile_file_overrides_a_bundled_one(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('base = "modern"\nname = "mine"\nclock_ghz = 2.0\n[hvm]\n'
                 'vmexit_cycles = { value = 999, source = "my measurement" }\n')
    p = load_profile(str(f))
    assert p.name == "mine" and p.clock_ghz == 2.0 and p.value("hvm.vmexit_cycles") == 999
    assert p.value("native.syscall_cycles") == load_profile("modern").value("native.syscall_cycles")


def test_profile_constant_without_source_is_refused(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('name = "bad"\nclock_ghz = 2.0\n[native]\nsyscall_cycles = { value = 5 }\n')
    with pytest.raises(ScenarioError, match="source"):
        load_profile(str(f))


def test_guest_kernels_never_import_hypervisor_internals():
    for py in (ROOT / "guest_kernels").rglob("*.py"):
        tree = ast.parse(py.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert not n.startswith("pvsim.hypervisor"), f"{py}: imports {n}"


def test_hypercalls_package_imports_nothing_from_pvsim():
    for py in (ROOT / "hypercalls").rglob("*.py"):
        tree = ast.parse(py.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("pvsim"), py
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("pvsim") for a in node.names), py


def test_disallowed_hypercall_returns_enosys_and_is_counted():
    from hypercalls import errno
    from pvsim.hypervisor.domain import Domain
    from pvsim.hypervisor.hypervisor import Hypervisor

    hv = Hypervisor(load_profile("modern"))
    d = hv.add_domain(Domain(1, "h", "hvm", "hvm64"))
    assert hv.hypercall(d.vcpus[0], 1) == -errno.ENOSYS  # mmu_update is PV-only
    assert d.hypercall_counts["mmu_update"] == 1
    assert d.hypercall_errors[("mmu_update", -errno.ENOSYS)] == 1
    assert hv.hypercall(d.vcpus[0], 99) == -errno.ENOSYS  # no such hypercall


def test_shadow_fixups_never_livelock_on_bundled_workloads():
    """Every hidden-fault fix-up sticks (shadow walks see relinked entries: walk caches flushed)."""
    from pvsim.pricing import op_cost

    for mode in ("bt", "hvm-shadow"):
        for w in ("kernel-build", "forkwait", "lmbench.exec", "lmbench.ctx_16p_64k"):
            c = op_cost(w, mode, "modern" if mode != "bt" else "xeon-2003")
            assert not c.counts.get("mmu.fixup_livelock"), (mode, w)
