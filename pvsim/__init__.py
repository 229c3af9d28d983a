"""pvsim: a simulator of a Xen-style hypervisor.

Describe, build, run::

    from pvsim import Scenario, build
    results = build(Scenario.from_toml("examples/consolidation.toml")).run()

See docs/design.md for the model and README.md for the tour.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "Scenario", "build", "ScenarioError"]


def __getattr__(name):  # lazy, so that importing pvsim has no side effects and stays cheap
    if name == "Scenario":
        from pvsim.scenario import Scenario

        return Scenario
    if name == "build":
        from pvsim.system import build

        return build
    if name == "ScenarioError":
        from pvsim.errors import ScenarioError

        return ScenarioError
    raise AttributeError(name)
