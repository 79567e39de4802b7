"""Training data: candles in, normalised windows out, split by time and written down.

1. :func:`load_training_data` reads a candle CSV/Parquet file (one series), or a long table
   with ``by`` (many series, read and validated exactly as ``predict --by`` reads them), or a
   DataFrame, and fingerprints it (sha256 of the file's bytes; a DataFrame's content hash).
2. :func:`split_by_time` cuts each series into train / validation / test parts in time
   order: the last ``test_fraction`` of its bars are held out, the ``val_fraction`` before
   them validate, the rest trains. Nothing is shuffled across time, and each part's first
   and last timestamps become the lineage's :class:`SeriesSpan`s.
3. :class:`Windows` cuts windows of ``lookback + horizon + 1`` bars inside one part and
   normalises each the way the predictor normalises a forecast's history: per column,
   with the mean and std of the window's first ``lookback`` bars only, then clipped to
   +-5 (``kronos.predictor.history_stats``/``scale``, the very functions inference
   uses), so no input or target is scaled by candles after its history. The official
   scripts take the statistics over the whole window, future part included. Time features
   are the predictor's (``calc_time_stamps``).

Windows are made on demand (one (W, 6) array at a time), so a long universe costs its
candles in memory, not its windows.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from attrs import frozen

from kronos_registry.services.lineage import SINGLE_SERIES_KEY, DataFingerprint, SeriesSpan, file_sha256
from registry.errors import InputDataError

CLIP = 5.0                 # KronosPredictor's default clip
NO_CONTEXT_LIMIT = 2**31   # reading for training: every bar of a series is history


@frozen(eq=False)
class TrainingSeries:
    """One validated series: its candles (n, 6) float32 in the predictor's column order
    (open, high, low, close, volume, amount), time features (n, 5), and timestamps."""

    key: str
    values: np.ndarray
    stamps: np.ndarray
    timestamps: pd.Series

    def __len__(self) -> int:
        return len(self.values)

    def span(self, start: int, stop: int) -> SeriesSpan:
        return SeriesSpan(self.key, stop - start, _iso(self.timestamps.iloc[start]),
                          _iso(self.timestamps.iloc[stop - 1]))


@frozen(eq=False)
class TrainingData:
    series: tuple[TrainingSeries, ...]
    fingerprint: DataFingerprint
    source: str


@frozen
class Part:
    """Bars [start, stop) of series ``index``: one series' share of one split."""

    index: int
    start: int
    stop: int


# --------------------------------------------------------------------------- reading


def load_training_data(data, by: str | None = None) -> TrainingData:
    """A file path or a DataFrame -> validated series and the data's fingerprint."""
    from kronos_registry.candles import read_candles, validate_frame
    from kronos_registry.services.many import is_parquet, read_series, split_series

    if isinstance(data, pd.DataFrame):
        source, sha256, label = "DataFrame", frame_sha256(data), "DataFrame"
        if by is not None:
            found = split_series(data, by, pred_len=1, context=NO_CONTEXT_LIMIT)
        else:
            candles = validate_frame(data)
    else:
        path = Path(os.fspath(data))
        source, label = str(path), os.fspath(data)
        if not path.is_file():
            raise InputDataError(f"training data {path} does not exist", path=str(path), field="--input",
                                 hint=f"check the path (relative paths start at {Path.cwd()})")
        sha256 = file_sha256(path)
        if by is not None:
            found = read_series(path, by, pred_len=1, context=NO_CONTEXT_LIMIT)
        elif is_parquet(path):
            candles = validate_frame(_read_parquet(path), source=str(path))
        else:
            candles = read_candles(path)
    if by is not None:
        found.fail_if_bad()
        pairs = [(key, job.candles) for key, job in found.good]
    else:
        pairs = [(SINGLE_SERIES_KEY, candles)]
    series = tuple(_series(key, candles) for key, candles in pairs)
    firsts = [s.timestamps.iloc[0] for s in series]
    lasts = [s.timestamps.iloc[-1] for s in series]
    fingerprint = DataFingerprint(sha256=sha256, path=label, rows=sum(len(s) for s in series),
                                  series=len(series), by=by, first=_iso(min(firsts)), last=_iso(max(lasts)))
    return TrainingData(series, fingerprint, source)


def _series(key: str, candles) -> TrainingSeries:
    from kronos_registry.kronos.predictor import AMT_COL, PRICE_COLS, VOL_COL, calc_time_stamps

    values = candles.frame[PRICE_COLS + [VOL_COL, AMT_COL]].to_numpy(dtype=np.float32)
    stamps = calc_time_stamps(candles.timestamps).to_numpy(dtype=np.float32)
    return TrainingSeries(key, values, stamps, candles.timestamps.reset_index(drop=True))


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputDataError(f"{path} is not a readable Parquet file: {exc}", path=str(path),
                             hint="write it with pandas.DataFrame.to_parquet or pyarrow") from exc


def frame_sha256(frame: pd.DataFrame) -> str:
    """A DataFrame's fingerprint: sha256 over its column names and per-row content hashes."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _iso(stamp) -> str:
    return pd.Timestamp(stamp).isoformat()


# --------------------------------------------------------------------------- the time split


def split_by_time(data: TrainingData, *, val_fraction: float, test_fraction: float) -> dict[str, list[Part]]:
    """Each series' bars in time order: train, then validation, then the test tail."""
    parts: dict[str, list[Part]] = {"train": [], "validation": []}
    if test_fraction > 0:
        parts["test"] = []
    for index, series in enumerate(data.series):
        n = len(series)
        n_test = int(n * test_fraction)
        n_val = int(n * val_fraction)
        bounds = {"train": (0, n - n_val - n_test), "validation": (n - n_val - n_test, n - n_test),
                  "test": (n - n_test, n)}
        for name in parts:
            start, stop = bounds[name]
            if stop > start:
                parts[name].append(Part(index, start, stop))
    return parts


def split_spans(data: TrainingData, parts: Mapping[str, Sequence[Part]]) -> dict[str, tuple[SeriesSpan, ...]]:
    """The lineage's record of the split: per split, each series' bars and first/last time."""
    return {name: tuple(data.series[p.index].span(p.start, p.stop) for p in chosen)
            for name, chosen in parts.items()}


# --------------------------------------------------------------------------- windows


class Windows:
    """The windows of one split; ``batch(indices)`` -> (x (B, W, 6), stamps (B, W, 5)) tensors.

    A window is ``lookback + horizon + 1`` consecutive bars inside one part, starting every
    ``stride`` bars; ``x`` is normalised with its first ``lookback`` bars' statistics.
    """

    def __init__(self, data: TrainingData, parts: Sequence[Part], *, lookback: int, horizon: int,
                 stride: int = 1, clip: float = CLIP):
        self.data, self.lookback, self.clip = data, lookback, clip
        self.length = lookback + horizon + 1
        starts = [(p.index, s) for p in parts for s in range(p.start, p.stop - self.length + 1, stride)]
        self.starts = np.asarray(starts, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.starts)

    def window(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Window ``i``: normalised candles (W, 6) and time features (W, 5), float32."""
        from kronos_registry.kronos.predictor import history_stats, scale

        index, start = self.starts[i]
        series = self.data.series[index]
        raw = series.values[start:start + self.length]
        mean, std = history_stats(raw[:self.lookback])
        x = scale(raw, mean, std, self.clip).astype(np.float32)
        return x, series.stamps[start:start + self.length]

    def batch(self, indices: Sequence[int], device=None):
        import torch

        pairs = [self.window(int(i)) for i in indices]
        x = torch.from_numpy(np.stack([p[0] for p in pairs]))
        stamps = torch.from_numpy(np.stack([p[1] for p in pairs]))
        return x.to(device), stamps.to(device)


def require_windows(windows: Windows, split: str, data: TrainingData, parts: Sequence[Part], *,
                    option_hint: str) -> None:
    """Refuse a split with no window at all: training (or early stopping) could not run."""
    if len(windows):
        return
    longest = max((p.stop - p.start for p in parts), default=0)
    raise InputDataError(
        f"{data.source}: too little data for one {split} window: a window is {windows.length} bars "
        f"(lookback {windows.lookback} + horizon {windows.length - windows.lookback - 1} + 1) and the "
        f"{split} part of the longest series has {longest} bars", path=data.source, field="--lookback",
        hint=f"give more history, or a smaller --lookback / --horizon{option_hint}")


__all__ = ["CLIP", "Part", "TrainingData", "TrainingSeries", "Windows", "frame_sha256", "load_training_data",
           "require_windows", "split_by_time", "split_spans"]
