"""A rolling-origin evaluation: ours (every window in one batched call) vs a loop of the official predictor.

    .venv/bin/python benchmarks/bench_eval.py                      # 8 windows, Kronos-small shape
    .venv/bin/python benchmarks/bench_eval.py --windows 4 --lookback 128 --horizon 8    # quicker

One run, one checkpoint of the Kronos-small shape with random weights (seeded) and its
tokenizer, both loaded by the official classes and by ours from the same files. The windows
come from our planner (``services/evaluation/backtest.py``) over the real regression candles
(``../shared/data``, else a seeded random walk): ``--windows`` origins, ``--horizon`` bars apart,
each with ``--lookback`` bars of history. Decoding is greedy (top_k=1), so both must produce
the same forecasts (compared at rtol 1e-4).

- official: ``model.KronosPredictor.predict`` once per window, the forecast timestamps the
  ones our planner continued from each history (the loop a user writes today);
- ours: the evaluation's forecasting and scoring: all windows through ``forecast_series``
  (one ``SeriesRequest`` per window), the naive and drift baselines on the same windows, and
  every point metric per horizon step.

Both warm up on one tiny forecast first; wall seconds are compared, and the ratio printed.
The official package (``kronos-model-arch``, top-level ``model``) must be importable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CANDLES = REPO.parent / "shared" / "data" / "xshg_5min_regression_input.csv"
MODEL, TOKENIZER = "kronos-small", "kronos-tokenizer-base"


def candles(rows: int):
    import pandas as pd

    from kronos_registry.candles import read_candles, validate_frame

    if CANDLES.is_file():
        return read_candles(CANDLES), f"real candles ({CANDLES.name})"
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_predict import synthetic_candles

    frame, stamps = synthetic_candles(rows, seed=3)
    return validate_frame(pd.concat([stamps.rename("timestamps"), frame], axis=1)), "synthetic candles"


def build_checkpoints(folder: Path) -> None:
    import torch

    from kronos_registry.kronos.model import PUBLISHED_CONFIGS, Kronos, KronosTokenizer

    torch.manual_seed(1234)
    KronosTokenizer(**PUBLISHED_CONFIGS[TOKENIZER]).eval().save_pretrained(folder / TOKENIZER)
    torch.manual_seed(1235)
    Kronos(**PUBLISHED_CONFIGS[MODEL]).eval().save_pretrained(folder / MODEL)


def official_predictor(folder: Path):
    from model import Kronos, KronosPredictor, KronosTokenizer
    from safetensors.torch import load_file

    def load(cls, path):
        module = cls(**json.loads((path / "config.json").read_text()))
        module.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
        return module.eval()

    return KronosPredictor(load(Kronos, folder / MODEL), load(KronosTokenizer, folder / TOKENIZER), device="cpu",
                           max_context=512)


def our_predictor(folder: Path):
    from kronos_registry.kronos.predictor import KronosPredictor
    from kronos_registry.services.registry import load_module

    return KronosPredictor(load_module("model", folder / MODEL), load_module("tokenizer", folder / TOKENIZER),
                           device="cpu", max_context=512)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=8, help="origins (windows) to forecast [8]")
    ap.add_argument("--lookback", type=int, default=192, help="bars of history per window [192]")
    ap.add_argument("--horizon", type=int, default=16, help="bars forecast per window [16]")
    ap.add_argument("--max-batch", type=int, default=16, help="our windows per model pass [16]")
    args = ap.parse_args(argv)
    try:
        import model  # noqa: F401
    except ImportError:
        raise SystemExit("the official package is missing: pip install --no-deps kronos-model-arch==0.1.0 einops")
    import numpy as np
    import torch

    from kronos_registry.kronos.batch import COLUMNS
    from kronos_registry.services.evaluation.backtest import baseline_forecasts, model_forecasts, plan_windows
    from kronos_registry.services.evaluation.baselines import Baseline
    from kronos_registry.services.evaluation.scoring import POINT_METRICS, score
    from kronos_registry.services.forecast import ForecastParams, prepare_forecast

    series, where = candles(args.lookback + args.windows * args.horizon + 8)
    plan = plan_windows({"series": series}, horizon=args.horizon, context=512, lookback=args.lookback,
                        origins=args.windows)
    params = ForecastParams(pred_len=args.horizon, top_k=1, seed=0, lookback=args.lookback)
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, input: {where}")
    print(f"{len(plan.windows)} windows: lookback {plan.lookback}, horizon {plan.horizon}, Kronos-small shape "
          "(random weights), greedy")

    with tempfile.TemporaryDirectory() as tmp:
        build_checkpoints(Path(tmp))
        official, ours = official_predictor(Path(tmp)), our_predictor(Path(tmp))
    jobs = [prepare_forecast(plan.history_candles(w), pred_len=plan.horizon, context=512, lookback=plan.lookback)
            for w in plan.windows]
    warm = jobs[0].used
    for predictor in (official, ours):     # thread pools, allocator, first-call paths
        predictor.predict(warm.frame.iloc[-16:], warm.timestamps.iloc[-16:],
                          jobs[0].future.timestamps[:2], 2, top_k=1, verbose=False)

    load = os.getloadavg()[0]
    started = time.perf_counter()
    theirs = [official.predict(job.used.frame, job.used.timestamps, job.future.timestamps, plan.horizon, T=1.0,
                               top_k=1, top_p=0.9, sample_count=1, verbose=False)[COLUMNS].to_numpy()
              for job in jobs]
    official_s = time.perf_counter() - started

    started = time.perf_counter()
    mine = model_forecasts(ours, plan, params, name="ours", seed=0, max_batch=args.max_batch)
    base = [baseline_forecasts(Baseline(kind), plan, samples=1, seed=0) for kind in ("naive", "drift")]
    rows = score(plan, [mine, *base], metrics=POINT_METRICS, columns=("close",), quantiles=(), notes=[])
    ours_s = time.perf_counter() - started

    equal = bool(np.allclose(mine.point, np.stack(theirs), rtol=1e-4, atol=1e-6 * float(np.abs(theirs).max())))
    print(f"\nofficial loop of predict: {official_s:8.2f} s  ({official_s / len(jobs):.2f} s per window)")
    print(f"ours (batched + scored):  {ours_s:8.2f} s  ({len(rows)} report rows)")
    print(f"speed-up: {official_s / ours_s:.1f}x   greedy forecasts equal: {'yes' if equal else 'NO'}   "
          f"load avg at start: {load:.1f}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
