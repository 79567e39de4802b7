"""Many series at once: the batched core every face shares (CLI, server, Python, Ray).

A :class:`SeriesRequest` is one series to forecast: its own history (any length up to the
model's context), its own ``pred_len``, sampling settings and seed. :func:`forecast_series`
forecasts a list of them in as few model passes as the shapes allow and returns one
:class:`SeriesForecast` per request, in the requests' order.

Batch invariance: a series' forecast depends only on (model, its candles, its timestamps,
pred_len, sampling settings, its seed). Every series draws from its own generator, so it
samples the same tokens whether it runs alone, in any batch, in any order; values agree up
to float rounding. A series run alone with seed S equals ``predictor.predict(..., seed=S, valid_candles=True)``.

:func:`series_seed` derives a stable per-series seed from a job seed and the series key
(``--seed S`` in the CLI), so reruns and reshuffles agree.

Pure torch/pandas: no CLI, no registry.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import attrs
import numpy as np
import pandas as pd

from kronos_registry.candles.columns import COLUMNS

if TYPE_CHECKING:
    from kronos_registry.kronos.predictor import PreparedSeries


@attrs.frozen(eq=False)  # DataFrames have no single truth value, so no generated __eq__
class SeriesRequest:
    """One series to forecast.

    frame: history with columns open, high, low, close[, volume, amount] (validated, oldest
    first); timestamps: its timestamps (len == len(frame)); future: the forecast's timestamps
    (len == pred_len). Sampling settings as ``KronosPredictor.predict``. ``seed`` None draws
    from torch's global generator (not reproducible, not batch invariant).
    """

    key: str
    frame: pd.DataFrame
    timestamps: pd.Series
    future: pd.Series
    pred_len: int
    T: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    sample_count: int = 1
    seed: int | None = None


@attrs.frozen(eq=False)
class SeriesForecast:
    """The forecast of one series: the mean over samples (index = the future timestamps,
    columns open..amount, as ``predict`` gives) and, when sample_count > 1, every sampled
    path as an array (sample_count, pred_len, 6) in the input's units."""

    key: str
    forecast: pd.DataFrame
    samples: np.ndarray | None


def series_seed(seed: int, key: str) -> int:
    """A stable per-series seed from a job seed and the series key (63-bit, blake2b)."""
    h = hashlib.blake2b(f"{int(seed)}\x00{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") & ((1 << 63) - 1)


class GenerationStopped(Exception):
    """``should_stop`` said yes between two decoding steps: nobody wants this batch any more."""


def forecast_series(predictor, requests: Sequence[SeriesRequest], *, max_batch: int = 16,
                    progress: Callable[[int], None] | None = None, max_rows: int = 64,
                    steps: Callable[[Iterable[int]], Iterable[int]] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> list[SeriesForecast]:
    """Forecast every request; results in the requests' order.

    Requests are sorted by (sample_count, pred_len, history length) and cut into batches
    of at most ``max_batch`` series sharing a sample_count, and at most ``max_rows``
    sampled paths (series x sample_count; one series always fits): the key/value cache
    costs memory per path (~18 MiB for Kronos-small at a full 512-bar context), so raise
    it on a GPU with memory to spare. A batch mixes history lengths
    (left-padded, padding masked out), pred_lens (run to the longest, each keeps its own)
    and sampling settings. A series whose history plus forecast exceeds the predictor's
    context slides its window as ``predict`` does and runs alone. Each series samples with
    its own generator (seeded by its ``seed``), so its result does not depend on the batch.
    ``progress(n)`` is called after each batch with the number of series it finished;
    ``steps`` wraps each generation's iterable of steps (a progress bar over the bars of one
    long forecast, as ``tqdm`` does).
    ``should_stop()`` is asked before each series and between decoding steps; when it says
    yes, :class:`GenerationStopped` is raised (a server whose clients went away).
    Invalid input raises ``ValueError`` as ``predict`` does.
    """
    requests = list(requests)
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    items = [_prepare(predictor, i, r) for i, r in enumerate(requests)]
    out: list[SeriesForecast | None] = [None] * len(requests)
    alone = [it for it in items if it.length + it.req.pred_len > predictor.max_context]
    batched = sorted((it for it in items if it.length + it.req.pred_len <= predictor.max_context),
                     key=lambda it: (it.req.sample_count, it.req.pred_len, it.length, it.index))
    batches: list[list[_Item]] = []
    for it in batched:
        cap = max(1, min(max_batch, max_rows // int(it.req.sample_count)))
        if batches and len(batches[-1]) < cap and batches[-1][0].req.sample_count == it.req.sample_count:
            batches[-1].append(it)
        else:
            batches.append([it])
    hook = _step_hook(steps, should_stop)
    for it in alone:
        _stop_if(should_stop)
        out[it.index] = _forecast_alone(predictor, it, hook)
        if progress is not None:
            progress(1)
    for batch in batches:
        for it, result in zip(batch, _forecast_batch(predictor, batch, hook)):
            out[it.index] = result
        if progress is not None:
            progress(len(batch))
    return out  # type: ignore[return-value]


@attrs.frozen(eq=False)
class _Item:
    index: int
    req: SeriesRequest
    series: PreparedSeries   # normalised, clipped history (L, 6), its stamps, mean and std

    @property
    def length(self) -> int:
        return self.series.x.shape[0]


def _prepare(predictor, index: int, req: SeriesRequest) -> _Item:
    if int(req.sample_count) < 1:
        raise ValueError(f"series {req.key!r}: sample_count must be at least 1, got {req.sample_count}")
    series = predictor.prepare(req.frame, req.timestamps, req.future, req.pred_len, where=f" (series {req.key!r})")
    return _Item(index, req, series)


def _generator(predictor, seed):
    import torch
    return None if seed is None else torch.Generator(device=predictor.device).manual_seed(int(seed))


def _result(predictor, it: _Item, z: np.ndarray) -> SeriesForecast:
    """Normalised samples (S, pred_len, 6) -> the forecast in the input's units, as
    ``predict(..., valid_candles=True)``: every face's forecast is made of valid candles."""
    future = pd.DatetimeIndex(it.req.future, name="timestamps")
    frame, paths = predictor.outputs(z, it.series, future, valid=True)
    return SeriesForecast(it.req.key, frame, paths if it.req.sample_count > 1 else None)


def _forecast_alone(predictor, it: _Item, steps=None) -> SeriesForecast:
    """One series exactly as ``predict`` runs it (used when it slides past the context)."""
    r = it.req
    s = it.series
    z = predictor.sample(s.x[None], s.x_stamp[None], s.y_stamp[None], r.pred_len, r.T, r.top_k, r.top_p,
                         r.sample_count, False, _generator(predictor, r.seed), progress=steps)[0]
    return _result(predictor, it, z)


def _stop_if(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise GenerationStopped()


def _step_hook(steps, should_stop: Callable[[], bool] | None):
    """The ``progress`` wrapper for generate_tokens: ``steps`` (a progress bar), then a
    ``should_stop`` check before every step."""
    if should_stop is None:
        return steps

    def hooked(iterable):
        for step in (iterable if steps is None else steps(iterable)):
            _stop_if(should_stop)
            yield step
    return hooked


def _forecast_batch(predictor, batch: list[_Item], steps=None) -> list[SeriesForecast]:
    """Series that fit the context, one sample_count: one padded, KV-cached generation."""
    import torch

    from kronos_registry.kronos.generate import generate_tokens, sampling_probs

    dev = predictor.device
    tok, model = predictor.tokenizer, predictor.model
    B, S = len(batch), batch[0].req.sample_count
    lens = [it.length for it in batch]
    preds = [int(it.req.pred_len) for it in batch]
    Lmax, P = max(lens), max(preds)
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(dev)  # noqa: E731

    with torch.inference_mode():
        s1 = torch.zeros(B, Lmax, dtype=torch.long, device=dev)
        s2 = torch.zeros(B, Lmax, dtype=torch.long, device=dev)
        by_len: dict[int, list[int]] = {}
        for b, n in enumerate(lens):
            by_len.setdefault(n, []).append(b)
        for n, rows in by_len.items():           # tokenize series of one length together
            x = torch.clip(as_t(np.stack([batch[b].series.x for b in rows])), -predictor.clip, predictor.clip)
            t1, t2 = tok.encode(x, half=True)
            idx = torch.tensor(rows, device=dev)
            s1[idx, Lmax - n:] = t1
            s2[idx, Lmax - n:] = t2
        stamp = np.zeros((B, Lmax + P, 5), dtype=np.float32)
        for b, it in enumerate(batch):
            stamp[b, Lmax - lens[b]:Lmax] = it.series.x_stamp
            stamp[b, Lmax:Lmax + preds[b]] = it.series.y_stamp
        pad = torch.tensor([Lmax - n for n in lens], dtype=torch.long, device=dev)

        gens = [_generator(predictor, it.req.seed) for it in batch]
        settings: dict[tuple, list[int]] = {}
        for b, it in enumerate(batch):
            settings.setdefault((float(it.req.T), int(it.req.top_k), float(it.req.top_p)), []).append(b)
        groups = [(k, torch.tensor([b * S + s for b in bs for s in range(S)], device=dev))
                  for k, bs in settings.items()]

        def sampler(logits, head):
            if len(groups) == 1:
                probs = sampling_probs(logits, *groups[0][0])
            else:
                probs = torch.empty_like(logits)
                for (T, k, p), rows in groups:
                    probs[rows] = sampling_probs(logits[rows], T, k, p)
            if all(g is None for g in gens):
                return torch.multinomial(probs, 1)
            return torch.cat([torch.multinomial(probs[b * S:(b + 1) * S], 1, generator=gens[b])
                              for b in range(B)])

        t1, t2 = generate_tokens(model, s1, s2, as_t(stamp), P, max_context=Lmax + P, sample_count=S,
                                 pad=None if not any(Lmax - n for n in lens) else pad, sampler=sampler,
                                 progress=steps)

        # decode each series' own tokens (window = history + its forecast), same windows together
        zs: list[np.ndarray | None] = [None] * B
        by_win: dict[tuple[int, int], list[int]] = {}
        for b in range(B):
            by_win.setdefault((lens[b], preds[b]), []).append(b)
        for (n, q), rows in by_win.items():
            ridx = torch.tensor([b * S + s for b in rows for s in range(S)], device=dev)
            lo, hi = Lmax - n, Lmax + q
            w = max(0, (n + q) - predictor.max_context)
            z = tok.decode([t1[ridx, lo + w:hi], t2[ridx, lo + w:hi]], half=True)[:, -q:]   # (len(rows)*S, q, 6)
            z = z.float().cpu().numpy().reshape(len(rows), S, q, z.shape[-1])
            for j, b in enumerate(rows):
                zs[b] = z[j]
    return [_result(predictor, it, zs[b]) for b, it in enumerate(batch)]


__all__ = ["GenerationStopped", "SeriesRequest", "SeriesForecast", "forecast_series", "series_seed", "COLUMNS"]
