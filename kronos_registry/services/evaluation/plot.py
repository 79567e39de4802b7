"""The evaluation as a PNG (matplotlib, the `plot` extra): error by horizon step, and calibration.

Left: the close's MASE (MAE when MASE was not scored) at each horizon step, one line per model
(solid) and baseline (dashed), so where a model stops beating naive shows at a glance. Right,
with sampled paths: the share of outcomes at or below each forecast quantile against the
quantile itself (on the diagonal when calibrated), with each central interval's coverage.
Drawn from the report rows alone, so a stored run can be drawn again.
"""

from __future__ import annotations

from pathlib import Path

from kronos_registry.services.plot import write_png


def save_eval_plot(path: str, report, *, title: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    close = report[report["column"] == "close"]
    error = "mase" if (close["metric"] == "mase").any() else "mae"
    calibrated = close[close["metric"].astype(str).str.startswith("calibration_q") & (close["step"] == "all")]
    figure = Figure(figsize=(11 if len(calibrated) else 7, 4.6), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2 if len(calibrated) else 1, squeeze=False)[0]
    colours = _colours(list(dict.fromkeys(close["model"])))

    ax = axes[0]
    by_step = close[(close["metric"] == error) & (close["step"] != "all")]
    for name, rows in by_step.groupby("model", sort=False):
        baseline = rows["role"].iloc[0] == "baseline"
        ax.plot(rows["step"].astype(int), rows["value"], marker="o", markersize=3, color=colours[name],
                linestyle="--" if baseline else "-", linewidth=1.2 if baseline else 1.8, label=name)
    ax.set_xlabel("horizon step (bars after the origin)")
    ax.set_ylabel(f"{error.upper()} of close" + (" (1 = in-sample naive)" if error == "mase" else ""))
    ax.set_title(f"{error.upper()} by horizon step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")

    if len(calibrated):
        ax = axes[1]
        ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="calibrated")
        for name, rows in calibrated.groupby("model", sort=False):
            levels = rows["metric"].str.removeprefix("calibration_q").astype(float)
            order = levels.argsort()
            ax.plot(levels.iloc[order], rows["value"].iloc[order], marker="s", color=colours[name], label=name)
        cover = close[close["metric"].astype(str).str.startswith("coverage_") & (close["step"] == "all")]
        lines = [f"{r.model}: {float(r.metric.split('_')[1]):.0%} interval covers {r.value:.0%}"
                 for r in cover.itertuples()]
        if lines:
            ax.text(0.02, 0.98, "\n".join(lines), transform=ax.transAxes, va="top", fontsize="x-small")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("forecast quantile level")
        ax.set_ylabel("share of outcomes at or below it")
        ax.set_title("Calibration of the sampled paths")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")
    figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    return write_png(figure, path)


def _colours(names: list[str]) -> dict[str, str]:
    """A distinct colour per method (tab10, then tab20), in report order."""
    palette = [f"tab:{c}" for c in ("blue", "orange", "green", "red", "purple", "brown", "pink", "gray",
                                     "olive", "cyan")]
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


__all__ = ["save_eval_plot"]
