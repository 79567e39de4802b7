"""The leakage guard: never score a variant on the candles that trained it, unless told to.

An entry fine-tuned by this tool carries its lineage (``services/lineage.py``): the sha256 of
its training file and, per split, each series' span. A window's *truth* (the bars it is scored
on) is inside the trained span when

- the data is the same file (same sha256) and a trained span of the same series meets the
  window's truth; when the file was split by another key column than this run's, any trained
  span meeting it in time counts, and a lineage naming no spans counts the whole file; or
- the data is another file holding the same series key with overlapping timestamps.

Such windows are refused (InputDataError naming the series, both spans and the fix);
``--allow-overlap`` scores them and marks the model's rows. An entry without lineage (a
published model, a hand-added checkpoint) is scored with a note that overlap cannot be checked.
The held-out test split of a lineage is not a trained span: scoring on it is what it is for.
"""

from __future__ import annotations

import attrs

from kronos_registry.services.evaluation.backtest import Plan
from kronos_registry.services.lineage import Lineage, LineageError, SeriesSpan, overlapping_spans, same_data
from registry.errors import InputDataError

SHOWN = 3       # overlapping series named in a message; the rest are counted


@attrs.frozen
class Guard:
    """What the guard found for one model over one plan."""

    model: str
    checked: bool                        # False: no lineage, overlap unknown
    overlapping: tuple[int, ...] = ()    # indices into plan.windows
    note: str | None = None

    @property
    def marked(self) -> bool:
        return bool(self.overlapping)


def lineage_of(entry) -> Lineage | None:
    """The entry's parsed lineage, None without one; a broken one is an InputDataError naming its field."""
    if entry.lineage is None:
        return None
    try:
        return Lineage.from_mapping(entry.lineage)
    except LineageError as error:
        raise InputDataError(f"'{entry.name}': {error}", path=getattr(entry.origin, "path", None), field=error.field,
                             hint=f"fix the lineage of '{entry.name}' in its registry file (it is written by "
                                  "fine-tuning), or remove it to evaluate without the guard") from None


def check(entry, plan: Plan, *, sha256: str, by: str | None, source: str, allow_overlap: bool) -> Guard:
    """Guard one model entry (see the module doc); raises InputDataError on refused overlap."""
    lineage = lineage_of(entry)
    if lineage is None:
        return Guard(entry.name, False, note=f"note: '{entry.name}' records no lineage, so whether it trained on "
                                             "these windows cannot be checked")
    hits = [i for i, w in enumerate(plan.windows) if _inside(lineage, plan.truth_span(w), sha256, by)]
    if not hits:
        return Guard(entry.name, True)
    if not allow_overlap:
        raise _refusal(entry.name, lineage, plan, hits, sha256=sha256, source=source)
    return Guard(entry.name, True, tuple(hits),
                 note=f"warning: '{entry.name}' trained on {len(hits)} of these {len(plan.windows)} windows "
                      "(--allow-overlap): its rows are marked and its numbers are optimistic")


def _inside(lineage: Lineage, span: SeriesSpan, sha256: str, by: str | None) -> bool:
    trained = lineage.trained_spans()
    if same_data(lineage, sha256):
        if not trained:
            return True
        if lineage.data.by != by:     # the same bytes split by another key: compare times alone
            return bool(overlapping_spans(lineage, [attrs.evolve(span, key=t.key) for t in trained]))
    return bool(overlapping_spans(lineage, [span]))


def _refusal(name: str, lineage: Lineage, plan: Plan, hits: list[int], *, sha256: str, source: str) -> InputDataError:
    spans: dict[str, tuple[str, str]] = {}
    for i in hits:
        span = plan.truth_span(plan.windows[i])
        first, last = spans.get(span.key, (span.first, span.last))
        spans[span.key] = (min(first, span.first), max(last, span.last))
    trained = {t.key: t for t in lineage.trained_spans()}
    lines = []
    for key, (first, last) in list(spans.items())[:SHOWN]:
        seen = trained.get(key)
        told = f", trained on {seen.first} .. {seen.last}" if seen is not None else ""
        lines.append(f"  - series {key!r}: windows scored on {first} .. {last}{told}")
    if len(spans) > SHOWN:
        lines.append(f"  - and {len(spans) - SHOWN} more series")
    why = ("it is the file the model was fine-tuned on (same sha256)" if same_data(lineage, sha256) else
           "the same series and timestamps are in the data it was fine-tuned on")
    last_trained = max((t.last for t in lineage.trained_spans()), default=lineage.data.last)
    return InputDataError(
        f"refusing to evaluate '{name}' on candles it was trained on: {len(hits)} of {len(plan.windows)} windows of "
        f"{source} fall inside its training span ({why}):\n" + "\n".join(lines),
        path=source, field="allow_overlap",
        hint=f"evaluate on candles after {last_trained} (its held-out test split, or newer data), or pass "
             "--allow-overlap to score them anyway with its rows marked as trained-on")


__all__ = ["Guard", "check", "lineage_of"]
