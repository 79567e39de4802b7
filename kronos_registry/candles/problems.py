"""Collecting what is wrong with candles, then reporting it as one InputDataError.

Validation does not stop at the first bad cell: it logs every problem, keeps the first few
of each kind, and raises once, so that one run shows the user everything to correct.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import attrs
import numpy as np

from registry.errors import InputDataError

# Enough to show every kind of mistake in a file without burying the reader.
MAX_REPORTED_PROBLEMS = 10

# Names listed in one message (the columns a file has): enough to recognise the file, and a
# file with 300,000 columns must not turn one error into megabytes.
MAX_LISTED = 12


def listed(items, limit: int = MAX_LISTED) -> str:
    """``items`` joined with commas, at most ``limit`` of them, then '... and N more'."""
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit:,} more" if len(items) > limit else "")


# Names a row for a message: "line 7" in a file, "position 6" in a DataFrame, "candles[6]".
Locate = Callable[[int], str]


@attrs.frozen
class CellProblem:
    """One wrong cell (or, with position None, a problem with the whole table)."""

    position: int | None
    column: str | None
    message: str
    fix: str


@attrs.define
class ProblemLog:
    """Collects problems, keeping only the first few of each kind but counting them all."""

    problems: list[CellProblem] = attrs.Factory(list)
    total: int = 0

    def add_table_problem(self, column: str | None, message: str, fix: str) -> None:
        self.problems.append(CellProblem(None, column, message, fix))
        self.total += 1

    def add_cells(self, positions: np.ndarray, column: str, describe: Callable[[int], str], fix: str) -> None:
        self.total += len(positions)
        for position in positions[:MAX_REPORTED_PROBLEMS]:
            self.problems.append(CellProblem(int(position), column, describe(int(position)), fix))

    def first(self) -> list[CellProblem]:
        """The problems to show: table-wide ones first, then by row."""
        ordered = sorted(self.problems, key=lambda p: (p.position is not None, p.position or 0))
        return ordered[:MAX_REPORTED_PROBLEMS]


def raise_problems(log: ProblemLog, *, source: str, path: Path | None, locate: Locate) -> None:
    """Raise the logged problems as one InputDataError: one line, or a list with a count."""
    shown = log.first()
    fixes = list(dict.fromkeys(problem.fix for problem in shown))
    first = shown[0]
    if log.total == 1:
        message = f"{source}: {_describe(first, locate)}"
    else:
        lines = [f"  - {_describe(problem, locate)}" for problem in shown]
        if log.total > len(shown):
            lines.append(f"  ... and {log.total - len(shown)} more")
        message = f"{source} has {log.total} problems in its candles:\n" + "\n".join(lines)
    raise InputDataError(message, path=path_text(path), field=first.column, hint="; ".join(fixes))


def _describe(problem: CellProblem, locate: Locate) -> str:
    where = [] if problem.position is None else [locate(problem.position)]
    if problem.column is not None:
        where.append(f"column '{problem.column}'")
    return f"{', '.join(where)}: {problem.message}" if where else problem.message


def path_text(path: Path | None) -> str | None:
    """The ``path=`` of an InputDataError: the file, or None for a DataFrame or a request."""
    return None if path is None else str(path)
