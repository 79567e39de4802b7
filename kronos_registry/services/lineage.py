"""Lineage: what made a fine-tuned entry, recorded once and read by every service.

Fine-tuning (``services/training``) writes a :class:`Lineage` into the new entry's YAML
(``lineage:``, beside ``source:``), so it travels with the registry file and inside bundles;
evaluation (``services/evaluation``) reads it to refuse scoring a variant on the candles that
trained it; ``show`` prints it, ``list`` marks the entry fine-tuned, ``verify`` checks that the
weights it names are the weights stored. These fields are the one agreement between those
services: add a field here, never a parallel record elsewhere.

The data is identified by a :class:`DataFingerprint` (sha256 of the file's bytes, rows, series,
span) and each split by the per-series spans it covered (:class:`SeriesSpan`), so overlap with
new data can be checked both ways: the same file (same sha256), or the same series keys with
overlapping timestamps (:func:`overlapping_spans`), whatever file they come in.

Only attrs, hashlib and the standard library: cheap to import from ``list`` and ``show``.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs
from attrs import frozen

LINEAGE_SCHEMA = 1
SPLITS = ("train", "validation", "test")
SINGLE_SERIES_KEY = "series"     # the key of the one series of a file read without --by


class LineageError(ValueError):
    """A lineage mapping that does not parse; ``field`` is its dotted path (``data.sha256``)."""

    def __init__(self, message: str, field: str):
        super().__init__(f"lineage.{field}: {message}")
        self.field = f"lineage.{field}"


def _timestamp(value: Any, field: str) -> str:
    """An ISO-8601 timestamp, kept as text (YAML round trips it unchanged)."""
    text = str(value)
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LineageError(f"{text!r} is not an ISO-8601 timestamp", field) from None
    return text


@frozen
class SeriesSpan:
    """One series' part of a split: its key, bar count and first/last timestamps (ISO-8601)."""

    key: str
    rows: int
    first: str
    last: str

    def to_dict(self) -> dict:
        return {"key": self.key, "rows": self.rows, "first": self.first, "last": self.last}

    @classmethod
    def from_mapping(cls, data: Mapping, field: str) -> SeriesSpan:
        missing = [k for k in ("key", "rows", "first", "last") if k not in data]
        if missing:
            raise LineageError(f"missing {', '.join(missing)}", field)
        return cls(str(data["key"]), int(data["rows"]), _timestamp(data["first"], f"{field}.first"),
                   _timestamp(data["last"], f"{field}.last"))


@frozen
class DataFingerprint:
    """The training data: its file's sha256, where it was read, and what it held."""

    sha256: str = attrs.field(validator=attrs.validators.matches_re(r"[0-9a-f]{64}"))
    path: str                      # as given to finetune (informational: the hash identifies the data)
    rows: int
    series: int
    by: str | None                 # the key column of a long table, None for one series
    first: str                     # earliest and latest timestamp over all series
    last: str

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "path": self.path, "rows": self.rows, "series": self.series,
                "by": self.by, "first": self.first, "last": self.last}

    @classmethod
    def from_mapping(cls, data: Mapping, field: str = "data") -> DataFingerprint:
        try:
            return cls(str(data["sha256"]), str(data.get("path", "")), int(data["rows"]), int(data["series"]),
                       data.get("by"), _timestamp(data["first"], f"{field}.first"),
                       _timestamp(data["last"], f"{field}.last"))
        except KeyError as missing:
            raise LineageError(f"missing {missing.args[0]}", field) from None
        except ValueError as error:
            if isinstance(error, LineageError):
                raise
            raise LineageError(f"sha256 must be 64 lowercase hex digits ({error})", f"{field}.sha256") from None


@frozen
class Lineage:
    """What made a fine-tuned entry (see the module doc). Times are ISO-8601 text."""

    base: str                                  # the base entry's name
    base_artifact: str                         # its stored artifact id (revision) when it was fine-tuned
    tokenizer: str                             # the tokenizer entry the new model pairs with
    tokenizer_trained: bool                    # True: that tokenizer was trained by this run too
    data: DataFingerprint
    splits: Mapping[str, tuple[SeriesSpan, ...]]   # "train", "validation"[, "test"] -> per-series spans
    hyperparameters: Mapping[str, Any]         # lr, epochs, batch size, lookback, horizon, seed, ...
    best_validation_loss: float | None
    weights_sha256: Mapping[str, str]          # "model"[, "tokenizer"] -> sha256 of model.safetensors
    created: str
    tool_version: str
    schema: int = LINEAGE_SCHEMA

    # ------------------------------------------------------------------ YAML

    def to_dict(self) -> dict:
        """A plain mapping for the entry's ``lineage:`` key (and JSON)."""
        return {
            "schema": self.schema, "base": self.base, "base_artifact": self.base_artifact,
            "tokenizer": self.tokenizer, "tokenizer_trained": self.tokenizer_trained,
            "data": self.data.to_dict(),
            "splits": {name: [span.to_dict() for span in spans] for name, spans in self.splits.items()},
            "hyperparameters": dict(self.hyperparameters),
            "best_validation_loss": self.best_validation_loss,
            "weights_sha256": dict(self.weights_sha256),
            "created": self.created, "tool_version": self.tool_version,
        }

    @classmethod
    def from_mapping(cls, data: Mapping) -> Lineage:
        """Parse an entry's ``lineage:`` mapping; LineageError names the field at fault."""
        if not isinstance(data, Mapping):
            raise LineageError(f"must be a mapping, not {type(data).__name__}", "(root)")
        required = ("base", "base_artifact", "tokenizer", "data", "splits", "weights_sha256", "created")
        missing = [name for name in required if name not in data]
        if missing:
            raise LineageError(f"missing {', '.join(missing)}", missing[0])
        schema = int(data.get("schema", LINEAGE_SCHEMA))
        if schema > LINEAGE_SCHEMA:
            raise LineageError(f"schema {schema} is newer than this version understands ({LINEAGE_SCHEMA}); "
                               "upgrade kronos-registry", "schema")
        splits = data["splits"]
        if not isinstance(splits, Mapping) or any(name not in SPLITS for name in splits):
            raise LineageError(f"must map {', '.join(SPLITS)} to lists of series spans", "splits")
        return cls(
            base=str(data["base"]), base_artifact=str(data["base_artifact"]), tokenizer=str(data["tokenizer"]),
            tokenizer_trained=bool(data.get("tokenizer_trained", False)),
            data=DataFingerprint.from_mapping(data["data"]),
            splits={name: tuple(SeriesSpan.from_mapping(span, f"splits.{name}[{i}]")
                                for i, span in enumerate(spans)) for name, spans in splits.items()},
            hyperparameters=dict(data.get("hyperparameters") or {}),
            best_validation_loss=(None if data.get("best_validation_loss") is None
                                  else float(data["best_validation_loss"])),
            weights_sha256={str(k): str(v) for k, v in dict(data["weights_sha256"]).items()},
            created=_timestamp(data["created"], "created"), tool_version=str(data.get("tool_version", "")),
            schema=schema)

    # ------------------------------------------------------------------ reading

    def trained_spans(self) -> tuple[SeriesSpan, ...]:
        """Every span the weights saw while training or choosing the best checkpoint (train and
        validation; a held-out test tail is excluded: evaluating on it is what it is for)."""
        return tuple(span for name in ("train", "validation") for span in self.splits.get(name, ()))

    def summary(self) -> str:
        """One line for `show` and `list`: base, data, span, best validation loss."""
        loss = "" if self.best_validation_loss is None else f", best validation loss {self.best_validation_loss:.4g}"
        series = f"{self.data.series} series" if self.data.series != 1 else "1 series"
        return (f"fine-tuned from {self.base} on {Path(self.data.path).name or 'data'} ({series}, "
                f"{self.data.rows:,} rows, {self.data.first} .. {self.data.last}, sha256 {self.data.sha256[:12]}){loss}")


# ---------------------------------------------------------------------- fingerprints and overlap


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes: what identifies training (and evaluation) data."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@frozen
class Overlap:
    """A series of the evaluated data whose span meets a span the weights trained on."""

    key: str
    trained: SeriesSpan
    evaluated: SeriesSpan

    def describe(self) -> str:
        return (f"series {self.key!r}: evaluated {self.evaluated.first} .. {self.evaluated.last}, "
                f"trained on {self.trained.first} .. {self.trained.last}")


def _instant(text: str) -> datetime:
    """Naive UTC, so that spans written with and without an offset compare."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is None else moment.astimezone(timezone.utc).replace(tzinfo=None)


def overlapping_spans(lineage: Lineage, evaluated: Iterable[SeriesSpan]) -> list[Overlap]:
    """The evaluated spans that share a series key and any instant with a trained span.

    Both ends are inclusive: a window that starts on the last trained bar overlaps.
    """
    trained: dict[str, list[SeriesSpan]] = {}
    for span in lineage.trained_spans():
        trained.setdefault(span.key, []).append(span)
    found = []
    for span in evaluated:
        for seen in trained.get(span.key, ()):
            if _instant(span.first) <= _instant(seen.last) and _instant(seen.first) <= _instant(span.last):
                found.append(Overlap(span.key, seen, span))
                break
    return found


def same_data(lineage: Lineage, sha256: str) -> bool:
    """True when ``sha256`` is the fingerprint of the file the entry was trained on."""
    return lineage.data.sha256 == sha256


__all__ = ["DataFingerprint", "LINEAGE_SCHEMA", "Lineage", "LineageError", "Overlap", "SINGLE_SERIES_KEY",
           "SPLITS", "SeriesSpan", "file_sha256", "overlapping_spans", "same_data"]
