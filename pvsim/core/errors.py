"""Errors pvsim raises to its users.

A bad description raises :class:`ScenarioError` naming the field path and what is allowed, e.g.
``domains[2].vcpus: must be 1..128, got 0``. The CLI prints it on one line and exits with 2.
"""


class PvsimError(Exception):
    """Base class of every error pvsim raises on purpose."""


class ScenarioError(PvsimError, ValueError):
    """A scenario, profile or command-line value is invalid.

    ``field`` is the dotted path of the offending value (``domains[0].mode``).
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
