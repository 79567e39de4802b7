"""The command-line face: `kronos-registry` (see ``main`` for the commands)."""

from kronos_registry.cli.main import cli, main

__all__ = ["cli", "main"]
