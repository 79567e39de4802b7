"""The console script: the group with every command registered (`kronos-registry`)."""

from __future__ import annotations

from typing import Sequence

# Each command module registers its commands on the group when imported; optional faces
# (serve, mcp) import their extras only when they run.
from kronos_registry.cli import add, bundle, doctor, entries, finetune, mcp, predict, remove, serve, sync  # noqa: F401
from kronos_registry.cli import eval as eval_command  # noqa: F401
from kronos_registry.cli.app import PROG, cli


def main(argv: Sequence[str] | None = None, prog_name: str = PROG) -> None:
    """The console script `kronos-registry`."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=prog_name)
