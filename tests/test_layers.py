"""The layers, kept true: every import of every module is parsed and checked against the rules of
docs/design.md ("Layers and who may import whom").

Ranks, lowest first: the ABI (``hypercalls``); the core (``pvsim.core``); the machine (``pvsim.mm``,
the physical devices); the hypervisor (``pvsim.hypervisor``, ``pvsim.sched``, the split drivers and
xenstore of ``pvsim.io``) beside the guest kernels (``guest_kernels``); the workloads and the migration model
(``pvsim.migrate``); the
description (``pvsim.scenario``, ``pvsim.results``); the builder (``pvsim.wiring``, ``pvsim.pricing``,
``pvsim.system``, ``pvsim.migrate.live``); the front (``pvsim.compare``, ``pvsim.sweep``, ``pvsim.xl``, ``pvsim.plots``,
``pvsim.cli``). A module imports its own rank or lower, with two narrower rules: a guest kernel sees
only the ABI, the engine and the meter (and its own package); a workload sees only the core and the
action vocabulary of the guest kernels. No import cycles; no import of a project module inside a
function unless its line says why (``# in-function: ...``).
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKGS = ("pvsim", "guest_kernels", "hypercalls")

RANKS = [  # (module prefix, rank); the longest matching prefix wins
    ("hypercalls", 0),
    ("pvsim.core", 1),
    ("pvsim.mm", 2), ("pvsim.io.devices", 2), ("pvsim.io.flows", 2), ("pvsim.io.ring", 2),
    ("pvsim.hypervisor", 3), ("pvsim.sched", 3), ("pvsim.io", 3), ("guest_kernels", 3),
    ("pvsim.workloads", 4), ("pvsim.migrate", 4), ("pvsim.migrate.live", 6), ("pvsim.migrate.inrun", 6),
    ("pvsim.ha.remus", 4), ("pvsim.ha.disk", 4),
    ("pvsim.scenario", 5), ("pvsim.results", 5), ("pvsim.xlcfg", 5),
    ("pvsim.ha", 6), ("pvsim.convert", 6), ("pvsim.wiring", 6), ("pvsim.pricing", 6), ("pvsim.programs", 6), ("pvsim.system", 6),
    ("pvsim.compare", 7), ("pvsim.sweep", 7), ("pvsim.validation", 7), ("pvsim.calibrate", 7), ("pvsim.xl", 7),
    ("pvsim.xlviews", 7), ("pvsim.plots", 7), ("pvsim.cli", 7),
    ("pvsim.trace", 7),
    ("pvsim", 7),
]
GUEST_MAY = ("hypercalls", "pvsim.core.engine", "pvsim.core.meter", "guest_kernels")
WORKLOAD_MAY = ("pvsim.core", "pvsim.workloads", "guest_kernels.actions")


def rank(mod: str) -> int:
    best = max((p for p, _ in RANKS if mod == p or mod.startswith(p + ".")), key=len)
    return dict(RANKS)[best]


def _modules(root: pathlib.Path) -> dict[str, pathlib.Path]:
    out = {}
    for pkg in PKGS:
        for p in (root / pkg).rglob("*.py"):
            rel = p.relative_to(root).with_suffix("")
            name = ".".join(rel.parts)
            out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = p
    return out


def _resolve(name: str, mods) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(source: str, mod: str, mods) -> tuple[set[str], list[tuple[int, str]]]:
    """(project modules imported, in-function imports without a reason) of one module's source."""
    tree = ast.parse(source)
    lines = source.splitlines()
    out, infunc = set(), []

    def targets(node):
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            parts = mod.split(".")[: -node.level] if not mod.endswith("__init__") else mod.split(".")
            base = ".".join(parts + ([node.module] if node.module else []))
        return [base] + [f"{base}.{a.name}" for a in node.names]

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for t in targets(node):
                r = _resolve(t, mods)
                if r and r != mod:
                    out.add(r)
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and any(_resolve(t, mods) for t in targets(node)):
                    if "# in-function:" not in lines[node.lineno - 1]:
                        infunc.append((node.lineno, lines[node.lineno - 1].strip()))
    return out, infunc


def violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, ts in sorted(graph.items()):
        for t in sorted(ts):
            if m.startswith("guest_kernels") and not any(t == p or t.startswith(p + ".") for p in GUEST_MAY):
                bad.append(f"{m} -> {t}: a guest kernel sees only the ABI, the engine and the meter")
            elif m.startswith("pvsim.workloads") and not any(t == p or t.startswith(p + ".") for p in WORKLOAD_MAY):
                bad.append(f"{m} -> {t}: a workload imports no subsystem")
            elif rank(t) > rank(m):
                bad.append(f"{m} (rank {rank(m)}) -> {t} (rank {rank(t)}): an upward import")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def project():
    mods = _modules(ROOT)
    graph, infunc = {}, {}
    for m, p in mods.items():
        graph[m], infunc[m] = imports_of(p.read_text(), m, mods)
    return mods, graph, infunc


def test_every_module_has_a_rank(project):
    mods, _, _ = project
    for m in mods:
        rank(m)


def test_no_import_breaks_the_layers(project):
    _, graph, _ = project
    assert violations(graph) == []


def test_no_import_cycle(project):
    _, graph, _ = project
    assert cycles(graph) == []


def test_no_project_import_inside_a_function(project):
    _, _, infunc = project
    assert {m: v for m, v in infunc.items() if v} == {}


def test_the_checker_catches_an_upward_import_and_a_cycle(project):
    mods, graph, _ = project
    g = {k: set(v) for k, v in graph.items()}
    g["pvsim.mm.machine"].add("guest_kernels.pv")  # the machine reaching a guest kernel
    g["guest_kernels.pv"].add("pvsim.hypervisor.hypervisor")  # a kernel reaching hypervisor internals
    g["pvsim.workloads.spec"].add("pvsim.io.paths")  # a workload reaching a subsystem
    g["pvsim.scenario"].add("pvsim.system")  # the description reaching the builder
    bad = violations(g)
    assert any(b.startswith("pvsim.mm.machine (rank 2) -> guest_kernels.pv") for b in bad)
    assert any("guest_kernels.pv -> pvsim.hypervisor.hypervisor" in b for b in bad)
    assert any("pvsim.workloads.spec -> pvsim.io.paths" in b for b in bad)
    assert any("pvsim.scenario" in b and "pvsim.system" in b for b in bad)
    g2 = {k: set(v) for k, v in graph.items()}
    g2["pvsim.core.engine"].add("pvsim.core.meter")
    g2["pvsim.core.meter"].add("pvsim.core.engine")
    assert cycles(g2)
    src = "def f():\n    from pvsim.system import build\n"
    assert imports_of(src, "pvsim.cli", mods)[1]
    assert not imports_of("def f():\n    from pvsim.system import build  # in-function: why\n", "pvsim.cli", mods)[1]
