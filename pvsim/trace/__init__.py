"""Tracing: xentrace files, a Perfetto (Chrome JSON) timeline and a xenalyze-style summary."""
