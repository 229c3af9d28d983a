import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "benchmark" not in item.keywords and item.fspath.basename.startswith("bench_"):
            item.add_marker(pytest.mark.benchmark)
