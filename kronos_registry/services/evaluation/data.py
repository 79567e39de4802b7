"""The candles an evaluation reads: one series or a long table, validated, with a fingerprint.

A file is identified by the sha256 of its bytes (``lineage.file_sha256``), what the leakage
guard compares with an entry's training data; a DataFrame by the sha256 of its CSV text. Every
series is validated as ``predict`` validates it (the ``candles`` package); the bad ones are
reported together, by key, and nothing is evaluated.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping

import attrs
import pandas as pd

from kronos_registry.candles import Candles, read_candles, validate_frame
from kronos_registry.services.lineage import SINGLE_SERIES_KEY, file_sha256
from registry.errors import InputDataError


@attrs.frozen(eq=False)
class EvalData:
    """Validated series by key, where they came from and their fingerprint."""

    series: Mapping[str, Candles]
    source: str
    sha256: str
    by: str | None

    def fingerprint(self) -> dict:
        """The same fields as ``lineage.DataFingerprint``, for a stored run."""
        firsts = [c.timestamps.iloc[0] for c in self.series.values()]
        lasts = [c.timestamps.iloc[-1] for c in self.series.values()]
        return {"sha256": self.sha256, "path": self.source, "rows": sum(len(c) for c in self.series.values()),
                "series": len(self.series), "by": self.by, "first": pd.Timestamp(min(firsts)).isoformat(),
                "last": pd.Timestamp(max(lasts)).isoformat()}


def read_data(path: str | os.PathLike, by: str | None = None) -> EvalData:
    """A candle CSV (one series, keyed ``series``) or, with ``by``, a long CSV/Parquet table."""
    file = Path(path)
    if by is None:
        candles = read_candles(file)
        return EvalData({SINGLE_SERIES_KEY: candles}, str(file), file_sha256(file), None)
    from kronos_registry.services.many import read_series

    found = read_series(file, by, pred_len=1, context=2)   # validation only: lookback and horizon are ours
    return EvalData(_good(found), str(file), file_sha256(file), by)


def frame_data(frame: pd.DataFrame, by: str | None = None, *, source: str = "DataFrame") -> EvalData:
    """A DataFrame of one series or, with ``by``, a long one; fingerprinted by its CSV text."""
    if not isinstance(frame, pd.DataFrame):
        raise InputDataError(f"expected a path or a pandas DataFrame of candles, got {type(frame).__name__}",
                             field="data", hint="pass a CSV path or a DataFrame with timestamps, open, high, "
                                                "low, close[, volume, amount]")
    sha = hashlib.sha256(frame.to_csv(index=False).encode("utf-8")).hexdigest()
    if by is None:
        return EvalData({SINGLE_SERIES_KEY: validate_frame(frame, source=source)}, source, sha, None)
    from kronos_registry.services.many import split_series

    return EvalData(_good(split_series(frame, by, source=source, pred_len=1, context=2)), source, sha, by)


def _good(found) -> dict[str, Candles]:
    if found.bad:
        lines = "\n".join(f"  - {bad.describe(found.by)}" for bad in found.bad)
        raise InputDataError(f"{found.source}: {len(found.bad)} of {found.total} series cannot be evaluated "
                             f"(nothing was evaluated):\n{lines}", path=found.source, field=found.by,
                             hint="; ".join(dict.fromkeys(b.error.hint for b in found.bad if b.error.hint))
                             or "fix the series named above")
    return {key: job.candles for key, job in found.good}


__all__ = ["EvalData", "frame_data", "read_data"]
