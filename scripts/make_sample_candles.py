"""Write kronos_registry/data/sample_candles.csv: SYNTHETIC five-minute candles for the demo.

The prices are a seeded random walk, not market data: they exist so that
`kronos-registry predict kronos-demo --input kronos_registry/data/sample_candles.csv` runs
on a fresh machine with no network. Bars are consecutive five-minute steps from
2024-01-02 09:30 (no market hours, no closures). Every bar is consistent:
high >= max(open, close), low <= min(open, close), volume and amount >= 0.

The output is byte-for-byte reproducible (fixed seed, fixed number formatting).

Usage: .venv/bin/python scripts/make_sample_candles.py [OUTPUT_CSV]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "kronos_registry" / "data" / "sample_candles.csv"
SEED = 20240102
ROWS = 512
START = "2024-01-02 09:30"
INTERVAL = "5min"
START_PRICE = 100.0


def build_sample_frame(rows: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    """The synthetic candles as a DataFrame, prices rounded to cents as an exchange quotes them."""
    rng = np.random.default_rng(seed)
    # Log returns of ~0.15% per bar: a calm intraday stock.
    closes = START_PRICE * np.exp(np.cumsum(rng.normal(0.0, 0.0015, rows)))
    opens = np.concatenate([[START_PRICE], closes[:-1]]) * (1 + rng.normal(0.0, 0.0003, rows))
    opens, closes = np.round(opens, 2), np.round(closes, 2)
    # Wicks from the rounded bodies, so rounding cannot put high below the body or low above it.
    upper_wick = np.round(np.abs(rng.normal(0.0, 0.08, rows)), 2)
    lower_wick = np.round(np.abs(rng.normal(0.0, 0.08, rows)), 2)
    highs = np.maximum(opens, closes) + upper_wick
    lows = np.minimum(opens, closes) - lower_wick
    # Busier bars on bigger moves, as in real trading.
    move = np.abs(closes - opens) / opens
    volumes = np.round(rng.lognormal(8.0, 0.4, rows) * (1 + 200 * move))
    amounts = volumes * (opens + highs + lows + closes) / 4
    return pd.DataFrame({
        "timestamps": pd.date_range(START, periods=rows, freq=INTERVAL),
        "open": opens,
        "high": np.round(highs, 2),
        "low": np.round(lows, 2),
        "close": closes,
        "volume": volumes,
        "amount": np.round(amounts, 2),
    })


def make_sample_candles(output: str | Path = DEFAULT_OUTPUT, rows: int = ROWS, seed: int = SEED) -> Path:
    """Write the synthetic candles to ``output`` and return its path."""
    out_path = Path(output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    frame = build_sample_frame(rows, seed)
    # Fixed formats and "\n" line ends: the same bytes on every platform and pandas version.
    frame.to_csv(out_path, index=False, lineterminator="\n", float_format="%.2f",
                 date_format="%Y-%m-%d %H:%M:%S")
    return out_path


def main(argv: list[str]) -> int:
    output = Path(argv[0]) if argv else DEFAULT_OUTPUT
    written = make_sample_candles(output)
    print(f"wrote {ROWS} synthetic candles to {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
