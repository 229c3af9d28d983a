"""pvsim's version (in every result's provenance)."""

__version__ = "0.2.0"
