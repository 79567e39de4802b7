"""Ray: the many-series job on a cluster (`predict ... --by COLUMN --ray [ADDRESS]`).

The optional extra ``kronos-registry[ray]``; ray is imported only here. The driver reads and
validates the input (``services/many.py``: every bad series is reported before anything runs), then
hands the series to ``ray.data``, one row per series and one block per batch of series, so
no series is ever split between batches. ``map_batches`` runs them on a pool of actors
(:class:`SeriesForecaster`); each actor loads the predictor once, by name, through the
registry on its own node (the node's store, synced from the entry's source or the mirror
in ``HF_ENDPOINT`` on first use and verified, as ``load_predictor`` always does), and
forecasts each batch with ``forecast_series``. Each series is seeded from (seed, its key),
so the output equals a local run's; the driver sorts it the same way (``sort_output``).
"""

from __future__ import annotations

import logging
import pickle
from typing import Callable, Sequence

import pandas as pd

from kronos_registry.kronos.batch import SeriesRequest, forecast_series
from kronos_registry.services.forecast import ForecastParams
from kronos_registry.services.many import output_rows, sort_output
from registry.errors import InputDataError


class SeriesForecaster:
    """A Ray actor: loads the predictor once, then forecasts batches of pickled requests."""

    def __init__(self, *, name: str, registry: str | None, store: str | None, offline: bool | None,
                 device: str | None, by: str, sampling: ForecastParams, max_batch: int):
        from kronos_registry.services.registry import Registry

        self.predictor = Registry(registry, store, offline=offline).load_predictor(name, device=device)
        self.by, self.sampling, self.max_batch = by, sampling, max_batch

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        requests = [pickle.loads(blob) for blob in batch["request"]]
        results = forecast_series(self.predictor, requests, max_batch=self.max_batch)
        return output_rows(results, by=self.by, sampling=self.sampling)


def run_on_ray(requests: Sequence[SeriesRequest], *, by: str, sampling: ForecastParams, name: str,
               registry: str | None, store: str | None, offline: bool | None, device: str | None = None,
               address: str | None = None, max_batch: int = 16, actors: int | None = None,
               progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Forecast ``requests`` on Ray -> the same long output as ``many.run_local``.

    Uses the Ray connection this process already has; else joins ``address`` (``auto`` or
    ``ray://host:10001``), or with no address starts a local cluster (and stops it after).
    ``actors``: the pool size [default: one per CPU, or per GPU with a cuda device, at most
    one per batch].
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address:
                ray.init(address=address, logging_level=logging.WARNING)
            else:
                ray.init(include_dashboard=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at '{address}'" if address else "a local Ray cluster"
            raise InputDataError(
                f"--ray: cannot reach {where}: {exc}", field="--ray",
                hint="start one (`ray start --head`) and pass `--ray auto` or its address "
                     "(host:6379, ray://host:10001); or give --ray no address for a local cluster") from None
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts series
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset INFO lines
        chunks = [requests[i:i + max_batch] for i in range(0, len(requests), max_batch)]
        if not chunks:
            return sort_output(output_rows([], by=by, sampling=sampling), by)
        blocks = [pd.DataFrame({"request": [pickle.dumps(r) for r in chunk]}) for chunk in chunks]
        gpu = device is not None and device.startswith("cuda")
        resources = ray.cluster_resources()
        pool = actors or max(1, int(resources.get("GPU" if gpu else "CPU", 1)))
        pool = max(1, min(pool, len(chunks)))
        forecasts = ray.data.from_pandas(blocks).map_batches(
            SeriesForecaster, batch_size=max_batch, batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=pool),
            fn_constructor_kwargs=dict(name=name, registry=registry, store=store, offline=offline,
                                       device=device, by=by, sampling=sampling, max_batch=max_batch),
            **({"num_gpus": 1} if gpu else {"num_cpus": 1}))
        parts, seen = [], set()
        for part in forecasts.iter_batches(batch_size=None, batch_format="pandas"):
            parts.append(part)
            new = set(part[by].astype(str)) - seen
            seen |= new
            if progress is not None and new:
                progress(len(new))
        frame = pd.concat(parts, ignore_index=True) if parts else output_rows([], by=by, sampling=sampling)
        return sort_output(_numpy_backed(frame, requests), by)
    finally:
        if started_here:
            ray.shutdown()


def _numpy_backed(frame: pd.DataFrame, requests: Sequence[SeriesRequest]) -> pd.DataFrame:
    """Arrow-backed columns back to the numpy dtypes of a local run (float32 stays float32,
    datetimes keep the inputs' unit), so both write the same file."""
    frame = frame.copy()
    for column in frame.columns:
        dtype = frame[column].dtype
        if isinstance(dtype, pd.ArrowDtype) and dtype.kind in "fiu":
            frame[column] = frame[column].to_numpy(dtype=dtype.numpy_dtype)
    if requests:
        frame["timestamps"] = frame["timestamps"].astype(pd.Series(pd.DatetimeIndex(requests[0].future)).dtype)
    return frame


__all__ = ["SeriesForecaster", "run_on_ray"]
