"""The compiled system's cache guard: an edit of any module of the package drops the whole cache."""

from pvsim.core.kernels import guard_cache


def test_an_edited_module_drops_the_cache_and_an_unchanged_tree_keeps_it(tmp_path):
    (tmp_path / "core.py").write_text("x = 1\n")
    (tmp_path / "credit.py").write_text("y = 1\n")
    assert guard_cache(tmp_path)  # first sight: nothing to trust
    cached = tmp_path / "__pycache__" / "core.f-1.py311.nbi"
    cached.write_text("index")
    assert not guard_cache(tmp_path) and cached.exists()
    (tmp_path / "credit.py").write_text("y = 2\n")  # the callee changes, the caller's file does not
    assert guard_cache(tmp_path) and not cached.exists()
