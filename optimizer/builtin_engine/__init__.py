"""The built-in engine's pure-Python parts: no Django, no network (importable and testable alone)."""
