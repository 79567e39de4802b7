"""What every command prints: errors as one short paragraph, JSON, aligned tables."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import click

from registry.errors import RegistryError
from registry.redact import redact_secrets


def print_error(error: BaseException, hints_shown: set[str] | None = None) -> None:
    """One short paragraph: `error: ...` and, when the error knows one, `hint: ...`.

    ``hints_shown`` collects the hints of a batch (`sync --all`), so each is said once.
    """
    from kronos_registry.services.errors import describe_error  # the error table's imports: only on an error

    if isinstance(error, RegistryError):
        report = describe_error(error)
        click.echo(f"error: {report.message}", err=True)
        if report.hint and (hints_shown is None or report.hint not in hints_shown):
            click.echo(f"hint: {report.hint}", err=True)
            if hints_shown is not None:
                hints_shown.add(report.hint)
    else:
        click.echo(f"error: {redact_secrets(str(error))}", err=True)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Plain aligned columns, two spaces apart: readable, greppable, no extra dependency."""
    rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = [headers, *rows]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in lines)


def shorten(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


