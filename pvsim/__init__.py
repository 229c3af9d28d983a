"""pvsim: a simulator of a Xen-style hypervisor.

Describe, build, run::

    from pvsim.scenario import Scenario
    from pvsim.system import build
    results = build(Scenario.from_toml("examples/consolidation.toml")).run()

See docs/design.md for the model and its layers, and README.md for the tour.
"""

from pvsim.core.version import __version__

__all__ = ["__version__"]
