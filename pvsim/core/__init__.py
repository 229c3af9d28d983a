"""The core every layer stands on: the engine (integer-ns SimPy clock, seeded RNG streams, demands,
trace bus), errors, the meter (work reported, priced by a profile), platform profiles, the registry
of compiled kernels, and schema validation. It imports nothing else of pvsim."""
