"""One mode table: no module outside it and the guest kernels compares a mode name. Behaviour that
differs per mode lives in the mode's kernel or in the component its table row names."""

import ast
import pathlib

from guest_kernels.modes import CONTROL_DOMAIN, MODES

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAMES = set(MODES) | {m for _n, m in CONTROL_DOMAIN.values()}


def comparisons_of_mode_names(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comparison with a mode name: ``x == "pv"``, ``m in ("bt", "hvm")``."""
    out = []
    tree = ast.parse(source)
    lines = source.splitlines()

    def names_in(node) -> set:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        return set()

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(x, ast.Attribute) and x.attr == "guest_type" for x in sides):
                continue  # Xen's guest types (pv32, pv64, hvm32, hvm64) are the ABI's, not modes
            for side in sides:
                if names_in(side) & NAMES:
                    out.append((node.lineno, lines[node.lineno - 1].strip()))
                    break
    return out


def test_no_mode_name_compared_outside_the_mode_table_and_the_kernels():
    found = {}
    for p in sorted((ROOT / "pvsim").rglob("*.py")) + sorted((ROOT / "hypercalls").rglob("*.py")):
        hits = comparisons_of_mode_names(p.read_text())
        if hits:
            found[str(p.relative_to(ROOT))] = hits
    assert found == {}


def test_the_check_sees_a_comparison():
    assert comparisons_of_mode_names('if mode == "pv":\n    pass\n')
    assert comparisons_of_mode_names('x = m in ("bt", "hvm-shadow")\n')
    assert not comparisons_of_mode_names('x = spec.paging == "shadow"\n')
