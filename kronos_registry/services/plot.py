"""The forecast chart as a PNG (matplotlib, the `plot` extra); the web page draws its own."""

from __future__ import annotations

from pathlib import Path

from registry.errors import InputDataError


def save_plot(path: str, candles, future, forecast, paths, *, title: str) -> None:
    """History (the last bars), the forecast's mean close and the spread across samples."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure without pyplot: no global state, no GUI backend, nothing to close.
    shown = min(len(candles), max(3 * len(future), 96))
    history_ts = candles.timestamps.iloc[-shown:].to_numpy()
    history_close = candles.frame["close"].iloc[-shown:].to_numpy()
    # Start the forecast at the last real bar so the two lines join.
    future_ts = np.concatenate([history_ts[-1:], future.to_numpy()])
    mean_close = np.concatenate([history_close[-1:], forecast["close"].to_numpy()])
    closes = paths[:, :, 3]  # (samples, pred_len): column 3 is close

    figure = Figure(figsize=(10, 4.8), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.plot(history_ts, history_close, color="0.25", linewidth=1.1, label="history (close)")
    if len(closes) > 1:
        ax.fill_between(future.to_numpy(), closes.min(axis=0), closes.max(axis=0), color="tab:blue",
                        alpha=0.15, linewidth=0, label=f"min-max of {len(closes)} samples")
        if len(closes) >= 5:
            low, high = np.quantile(closes, [0.1, 0.9], axis=0)
            ax.fill_between(future.to_numpy(), low, high, color="tab:blue", alpha=0.25, linewidth=0,
                            label="10-90% of samples")
    label = "forecast (close)" if len(closes) == 1 else f"forecast (mean close of {len(closes)})"
    ax.plot(future_ts, mean_close, color="tab:blue", linewidth=1.6, label=label)
    ax.axvline(history_ts[-1], color="0.5", linestyle=":", linewidth=1)
    ax.set_title(title)
    ax.set_ylabel("price")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    write_png(figure, path)


def write_png(figure, path: str | Path) -> Path:
    """Save a matplotlib Figure as a PNG at ``path`` (its folder made); a write that fails is an
    InputDataError naming the path, as every --plot reports it."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, format="png")
    except OSError as exc:
        raise InputDataError(f"cannot write {target}: {exc.strerror or exc}", path=str(target),
                             hint="choose a --plot path in a folder you can write to") from exc
    return target
