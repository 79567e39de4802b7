"""Honest evaluation of registry variants: rolling-origin backtests against baselines.

    metrics.py     every metric, its formula in its docstring (numpy only)
    baselines.py   naive, drift, seasonal:N, random-walk: what a model must beat
    backtest.py    the windows (origins over each series' tail) and every method's forecasts on them
    scoring.py     the report rows: metric x method x horizon step (and overall)
    skill.py       luck versus skill: a paired block-bootstrap interval against the best baseline
    guard.py       the leakage guard over an entry's lineage
    data.py        the candles evaluated, validated and fingerprinted
    results.py     runs kept in the store (<store>/evals/<entry>/<run-id>.json)
    job.py         one run for every face (CLI, Python)
    render.py      verdict sentences, the JSON document, report files
    plot.py        the PNG (matplotlib, the `plot` extra)

Importing this package imports nothing heavy; torch loads only when a model forecasts.
"""
