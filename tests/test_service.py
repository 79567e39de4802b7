"""The forecast service and model manager below the server and the MCP face: the one forecast
path, batching with batch invariance, loads once, LRU by count and bytes, keep-alive, errors."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from kronos_registry.api import Registry
from kronos_registry.candles import candles_from_records, read_candles, read_candles_text
from kronos_registry.services.forecast import ForecastParams, prepare_forecast, run_forecast
from kronos_registry.services.lanes import ForecastService, Limits, OverloadedError
from kronos_registry.services.model_cache import ModelManager
from registry.errors import EntryKindError, InputDataError, NotSyncedError, UnknownEntryError

SAMPLE = "kronos_registry/data/sample_candles.csv"
DEMO = "kronos-demo"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return Registry(None, tmp_path_factory.mktemp("store"), offline=True, env={})


@pytest.fixture(scope="module")
def candles():
    return read_candles(SAMPLE)


def _solo(registry, candles, params):
    """What `kronos-registry predict` computes: prepare_forecast + run_forecast, no service."""
    predictor = registry.load_predictor(DEMO, device="cpu")
    job = prepare_forecast(candles, pred_len=params.pred_len, context=registry.get(DEMO).context_length or 512,
                           lookback=params.lookback)
    return run_forecast(predictor, job, params, seed=params.seed)


def test_concurrent_forecasts_batch_together_and_each_equals_its_solo_run(registry, candles):
    service = ForecastService(registry, manager=ModelManager(registry, device="cpu"), max_batch=8,
                              batch_window_ms=200)
    cases = [ForecastParams(pred_len=4 + i % 3, samples=1 + i % 2, seed=100 + i, lookback=40 + 10 * i)
             for i in range(6)]
    try:
        with ThreadPoolExecutor(len(cases)) as pool:
            results = list(pool.map(lambda p: service.forecast(DEMO, candles, p), cases))
        assert service.manager.loads[DEMO] == 1
        assert max(service.batch_sizes) > 1, f"no batching: {dict(service.batch_sizes)}"
        for params, result in zip(cases, results):
            forecast, samples = _solo(registry, candles, params)
            np.testing.assert_allclose(result.forecast.to_numpy(), forecast.to_numpy(), rtol=1e-5, atol=1e-6)
            assert list(result.forecast.index) == list(forecast.index)
            assert result.seed == params.seed and len(result.job.used) == params.lookback
            body = result.to_json()
            assert len(body["timestamps"]) == params.pred_len and set(body["forecast"]) >= {"close", "amount"}
            assert ("quantiles" in body) == (params.samples > 1)
    finally:
        service.close()


def test_bad_requests_fail_alone_with_the_field_named(registry, candles):
    service = ForecastService(registry, manager=ModelManager(registry, device="cpu"),
                              limits=Limits(max_pred_len=50, max_samples=4, max_rows=1000))
    try:
        for params, field in [(ForecastParams(pred_len=51), "pred_len"), (ForecastParams(pred_len=2, samples=5), "samples"),
                              (ForecastParams(pred_len=2, top_p=0), "top_p"),
                              (ForecastParams(pred_len=2, quantiles=(0.5, 1.0)), "quantiles")]:
            with pytest.raises(InputDataError) as caught:
                service.forecast(DEMO, candles, params)
            assert caught.value.field == field and caught.value.hint
        with pytest.raises(InputDataError, match="over this service's limit of 1000"):
            service.forecast(DEMO, read_candles_text(_csv(1001)), ForecastParams(pred_len=2))
        with pytest.raises(UnknownEntryError):
            service.forecast("kronos-nope", candles, ForecastParams(pred_len=2))
        with pytest.raises(EntryKindError):
            service.forecast("kronos-demo-tokenizer", candles, ForecastParams(pred_len=2))
        with pytest.raises(InputDataError, match=r"future_timestamps has 1 future timestamp\(s\), but pred_len is 2"):
            service.forecast(DEMO, candles, ForecastParams(pred_len=2, future_timestamps=("2031-01-01",)))
        assert service.manager.loads[DEMO] == 0  # nothing bad reached a load
        good = service.forecast(DEMO, candles, ForecastParams(pred_len=2, seed=1))
        assert len(good.forecast) == 2
    finally:
        service.close()


def test_a_full_queue_is_overloaded_not_a_hang(registry, candles):
    service = ForecastService(registry, manager=ModelManager(registry, device="cpu"), limits=Limits(max_queue=0))
    try:
        with pytest.raises(OverloadedError) as caught:
            service.forecast(DEMO, candles, ForecastParams(pred_len=2))
        assert caught.value.retry_after >= 1
    finally:
        service.close()


def test_offline_not_synced_is_not_synced(tmp_path, candles):
    registry = Registry(None, tmp_path / "store", offline=True, env={"HF_HOME": str(tmp_path / "hf")})
    service = ForecastService(registry, manager=ModelManager(registry, device="cpu"))
    try:
        with pytest.raises(NotSyncedError, match="kronos-registry sync kronos-small"):
            service.forecast("kronos-small", candles, ForecastParams(pred_len=2))
    finally:
        service.close()


def test_text_and_records_candles_name_the_line_and_the_record():
    with pytest.raises(InputDataError, match=r"upload: line 3, column 'close'"):
        read_candles_text("timestamp,open,high,low,close\n2024-01-01,1,1,1,1\n2024-01-02,1,1,1,x\n",
                          source="upload")
    with pytest.raises(InputDataError, match=r"candles\[1\], column 'high'"):
        candles_from_records([{"timestamp": "2024-01-01", "open": 1, "high": 1, "low": 1, "close": 1},
                              {"timestamp": "2024-01-02", "open": 1, "high": None, "low": 1, "close": 1}])
    good = candles_from_records([{"timestamp": f"2024-01-0{d}", "open": 1, "high": 2, "low": 0.5, "close": 1.5}
                                 for d in (1, 2, 3)])
    assert list(good.frame["close"]) == [1.5] * 3 and good.timestamps.iloc[-1] == pd.Timestamp("2024-01-03")


def _csv(rows: int) -> str:
    stamps = pd.date_range("2024-01-01", periods=rows, freq="5min")
    return "timestamp,open,high,low,close\n" + "".join(f"{t},1,1.1,0.9,1\n" for t in stamps)


# ---------------------------------------------------------------------------- the model manager


class _FakeRegistry:
    """Counts loads; each 'model' weighs what `sizes` says. Loads can be made slow or failing."""

    def __init__(self, sizes, fail=()):
        self.sizes, self.fail, self.gate = dict(sizes), set(fail), threading.Event()
        self.gate.set()
        self.calls = []

    def load_predictor(self, name, device=None):
        self.calls.append(name)
        self.gate.wait(10)
        if name in self.fail:
            raise NotSyncedError(name, "/store")
        return _FakePredictor(self.sizes[name])

    def status(self, name):
        return f"{name}--abc"


class _FakePredictor:
    def __init__(self, size):
        import torch
        self.device = "cpu"
        self.model = torch.nn.Linear(1, 1, bias=False)
        self.model.weight = torch.nn.Parameter(torch.zeros(size // 4))
        self.tokenizer = torch.nn.Module()


def test_manager_loads_once_under_concurrency_and_a_failed_load_fails_its_waiters_only():
    fake = _FakeRegistry({"a": 400, "b": 400}, fail={"b"})
    manager = ModelManager(fake, max_models=2)
    fake.gate.clear()
    with ThreadPoolExecutor(8) as pool:
        a = [pool.submit(manager.get, "a") for _ in range(4)]
        b = [pool.submit(manager.get, "b") for _ in range(4)]
        threading.Timer(0.3, fake.gate.set).start()
        models = {f.result().predictor for f in a}
        errors = [f.exception() for f in b]
    assert len(models) == 1 and fake.calls.count("a") == 1 and manager.loads["a"] == 1
    assert all(isinstance(e, NotSyncedError) for e in errors) and fake.calls.count("b") == 1
    fake.fail.clear()
    assert manager.get("b").bytes == 400 and fake.calls.count("b") == 2   # not poisoned


def test_manager_unloads_least_recently_used_by_count_and_by_bytes_and_after_keep_alive():
    now = [1000.0]
    fake = _FakeRegistry({"a": 400, "b": 400, "c": 800})
    events = []
    manager = ModelManager(fake, max_models=2, max_bytes=1000, keep_alive=60, clock=lambda: now[0])
    manager.add_listener(lambda event, model: events.append((event, model.name)))
    manager.get("a"), manager.get("b"), manager.get("a")
    manager.get("c")                                 # 1600 bytes > 1000: b (LRU) then a go
    assert [m.name for m in manager.loaded()] == ["c"] and events[-2:] == [("unload", "b"), ("unload", "a")]
    manager.get("a")                                 # 1200 > 1000: c goes
    assert [m.name for m in manager.loaded()] == ["a"]
    info = manager.loaded()[0].info()
    assert info["bytes"] == 400 and info["expires_at"].startswith("1970-01-01T00:17:40")
    now[0] += 59
    assert manager.expire() == []
    now[0] += 2
    assert manager.expire() == ["a"] and manager.loaded() == [] and manager.unloads["a"] == 2


def test_a_lane_waits_for_requests_announced_but_still_being_read(registry, candles):
    """A request still being parsed when the window ends joins the batch if it was announced
    (service.arriving()), and runs in a batch of its own if it was not."""
    import time

    service = ForecastService(registry, manager=ModelManager(registry, device="cpu"), batch_window_ms=50)
    first, second = ForecastParams(pred_len=3, seed=1), ForecastParams(pred_len=3, seed=2)
    try:
        service.load(DEMO)
        with ThreadPoolExecutor(1) as pool:
            with service.arriving() as late:
                early = pool.submit(service.forecast, DEMO, candles, first)
                time.sleep(0.1)    # "parsing": longer than the window, shorter than ARRIVAL_WAIT windows
                service.forecast(DEMO, candles, second, arrival=late)
            early.result()
            assert dict(service.batch_sizes) == {2: 1}
            early = pool.submit(service.forecast, DEMO, candles, first)
            time.sleep(0.3)        # the same, unannounced: two batches
            service.forecast(DEMO, candles, second)
            early.result()
        assert dict(service.batch_sizes) == {2: 1, 1: 2}
        assert not service.still_arriving()
    finally:
        service.close()


def test_serve_help_states_the_services_own_default_limits():
    """`serve`'s limit options default to Limits() (both read kronos_registry/limits.py)."""
    import click

    from kronos_registry.cli.serve import serve
    from kronos_registry.services.limits import MIB

    context = click.Context(serve)
    defaults = {p.name: p.type_cast_value(context, p.get_default(context)) for p in serve.params
                if p.name in ("max_pred_len", "max_samples", "max_rows", "max_body", "max_queue")}
    assert Limits() == Limits(max_pred_len=defaults["max_pred_len"], max_samples=defaults["max_samples"],
                              max_rows=defaults["max_rows"], max_queue=defaults["max_queue"],
                              max_body_bytes=defaults["max_body"])
    assert Limits().max_body_bytes == 16 * MIB
