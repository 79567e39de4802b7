"""A generic, declarative model registry engine: spec, sources, store, verification.

It knows nothing about any particular model family; families plug in their checks.
"""
