"""Many series at once: `predict NAME --input LONG --by COLUMN` (issue 11, items 3 and 4).

Real subprocesses of the CLI over the packaged demo model (tests/support/cli.py), long-format
CSV and Parquet built from the sample candles; Ray on a local cluster started by the test.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from kronos_registry.kronos.batch import series_seed
from tests.support.cli import DEMO, SAMPLE_CSV, Cli, synced_demo

COLUMNS = ["open", "high", "low", "close", "volume", "amount"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Cli:
    """A store holding kronos-demo and its tokenizer. Do not modify it."""
    return synced_demo(tmp_path_factory.mktemp("demo"))


def long_candles(keys, rows: int = 60, step: int = 7) -> pd.DataFrame:
    """A long table: one series per key, each a different window of the sample candles, rows
    ordered by time then key (the way a database export interleaves them)."""
    sample = pd.read_csv(SAMPLE_CSV)
    parts = []
    for i, key in enumerate(keys):
        part = sample.iloc[i * step:i * step + rows].copy()
        part.insert(0, "symbol", key)
        parts.append(part)
    return pd.concat(parts).sort_values(["timestamps", "symbol"], kind="stable").reset_index(drop=True)


def write_csv(frame: pd.DataFrame, path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def close_enough(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert (a["symbol"].astype(str).to_numpy() == b["symbol"].astype(str).to_numpy()).all()
    assert (pd.to_datetime(a["timestamps"]).to_numpy() == pd.to_datetime(b["timestamps"]).to_numpy()).all()
    values = [c for c in a.columns if c not in ("symbol", "timestamps")]
    np.testing.assert_allclose(a[values].to_numpy(float), b[values].to_numpy(float), rtol=1e-5, atol=1e-6)


# --- CSV and Parquet in and out --------------------------------------------------------------------


def test_many_csv_each_series_equals_its_one_series_forecast(demo, tmp_path):
    keys = ["AAA", "BBB", "CCC"]
    table = long_candles(keys)
    source = write_csv(table, tmp_path / "long.csv")
    out = tmp_path / "out.csv"
    result = demo("predict", DEMO, "-i", source, "--by", "symbol", "-n", "4", "--seed", "7", "-o", out)
    assert result.code == 0, result.output
    got = pd.read_csv(out)
    assert list(got.columns) == ["symbol", "timestamps", *COLUMNS]
    assert got["symbol"].tolist() == [k for k in keys for _ in range(4)]
    assert "3 series by 'symbol' (3 forecast)" in result.stderr and "wrote" in result.stderr
    # Each series equals the one-series form run on its own rows with the series' own seed.
    for key in keys:
        alone_csv = write_csv(table[table.symbol == key].drop(columns="symbol"), tmp_path / f"{key}.csv")
        alone_out = tmp_path / f"{key}-out.csv"
        alone = demo("predict", DEMO, "-i", alone_csv, "-n", "4", "--seed", str(series_seed(7, key)),
                     "-o", alone_out)
        assert alone.code == 0, alone.output
        expected = pd.read_csv(alone_out)
        mine = got[got.symbol == key].reset_index(drop=True)
        assert mine["timestamps"].tolist() == expected["timestamps"].tolist()
        np.testing.assert_allclose(mine[COLUMNS].to_numpy(), expected[COLUMNS].to_numpy(), rtol=1e-5)


def test_many_parquet_in_and_out_with_quantiles(demo, tmp_path):
    pytest.importorskip("pyarrow")
    table = long_candles(["AAA", "BBB"], rows=40)
    csv_in = write_csv(table, tmp_path / "long.csv")
    parquet_in = tmp_path / "long.parquet"
    table.assign(timestamps=pd.to_datetime(table.timestamps)).to_parquet(parquet_in, index=False)
    common = ["-n", "3", "--seed", "5", "--samples", "4", "--by", "symbol"]
    from_csv = demo("predict", DEMO, "-i", csv_in, *common, "-o", tmp_path / "a.csv", "--quantiles", "0.1,0.9")
    assert from_csv.code == 0, from_csv.output
    from_parquet = demo("predict", DEMO, "-i", parquet_in, *common, "-o", tmp_path / "b.parquet",
                        "--quantiles", "0.1,0.9")
    assert from_parquet.code == 0, from_parquet.output
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_parquet(tmp_path / "b.parquet")
    quantile_columns = [f"{c}_q{q}" for c in COLUMNS for q in ("0.1", "0.9")]
    assert list(a.columns) == ["symbol", "timestamps", *COLUMNS, *quantile_columns]
    close_enough(a, b)
    assert (a["close_q0.1"] <= a["close_q0.9"]).all()
    # The default quantiles are 0.1, 0.5 and 0.9.
    default = demo("predict", DEMO, "-i", csv_in, *common, "-o", tmp_path / "c.csv")
    assert default.code == 0, default.output
    assert "close_q0.5" in pd.read_csv(tmp_path / "c.csv").columns


# --- bad series: --on-error fail | skip -------------------------------------------------------------


def bad_long_file(tmp_path) -> tuple[str, dict[str, int]]:
    """AAA good; BBB has an empty close; CCC has one row; DDD has two bars swapped.
    Returns the path and the file line of BBB's empty close and of DDD's out-of-order bar."""
    table = long_candles(["AAA", "BBB", "CCC", "DDD"], rows=30)
    table = table[~((table.symbol == "CCC") & (table.index != table.index[table.symbol == "CCC"][0]))]
    table = table.reset_index(drop=True)
    bbb = table.index[table.symbol == "BBB"][5]
    table["close"] = table["close"].astype(object)
    table.loc[bbb, "close"] = ""
    ddd = table.index[table.symbol == "DDD"]
    table.loc[[ddd[10], ddd[11]], "timestamps"] = table.loc[[ddd[11], ddd[10]], "timestamps"].to_numpy()
    path = write_csv(table, tmp_path / "bad.csv")
    return path, {"BBB": bbb + 2, "DDD": ddd[11] + 2}  # line = position + 2 (header, 1-based)


def test_many_on_error_fail_reports_every_bad_series_and_writes_nothing(demo, tmp_path):
    path, lines = bad_long_file(tmp_path)
    out = tmp_path / "out.csv"
    result = demo("predict", DEMO, "-i", path, "--by", "symbol", "-n", "3", "-o", out)
    assert result.code == 9, result.output
    err = result.stderr
    assert "3 of 4 series cannot be forecast" in err
    assert f"symbol=BBB: {path}: line {lines['BBB']}, column 'close': missing value" in err
    assert f"symbol=CCC: {path}: only 1 row of candles, but at least 2 are needed" in err
    assert f"symbol=DDD: {path}: line {lines['DDD']}, column 'timestamps':" in err and "is earlier than" in err
    assert "symbol=AAA" not in err and "--on-error skip" in err and "Traceback" not in result.output
    assert not out.exists()


def test_many_on_error_skip_warns_and_forecasts_the_rest(demo, tmp_path):
    path, lines = bad_long_file(tmp_path)
    out = tmp_path / "out.csv"
    result = demo("predict", DEMO, "-i", path, "--by", "symbol", "-n", "3", "-o", out, "--on-error", "skip")
    assert result.code == 0, result.output
    assert f"warning: skipped symbol=BBB: {path}: line {lines['BBB']}, column 'close'" in result.stderr
    assert "warning: skipped symbol=CCC" in result.stderr and "warning: skipped symbol=DDD" in result.stderr
    assert "(1 forecast, 3 skipped)" in result.stderr
    assert pd.read_csv(out)["symbol"].tolist() == ["AAA"] * 3


# --- seeds ---------------------------------------------------------------------------------------------


def test_many_seed_is_invariant_to_row_and_series_order(demo, tmp_path):
    keys = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    table = long_candles(keys, rows=40)
    # The same bars, series in another order and blocks instead of interleaved rows; fewer series too.
    shuffled = pd.concat([table[table.symbol == key] for key in reversed(keys)])
    subset = table[table.symbol.isin(["DDD", "BBB"])]
    outputs = []
    for name, frame in (("a", table), ("b", shuffled), ("c", subset)):
        out = tmp_path / f"{name}-out.csv"
        result = demo("predict", DEMO, "-i", write_csv(frame, tmp_path / f"{name}.csv"), "--by", "symbol",
                      "-n", "3", "--seed", "11", "--samples", "2", "-o", out)
        assert result.code == 0, result.output
        outputs.append(pd.read_csv(out))
    close_enough(outputs[0], outputs[1])
    close_enough(outputs[0][outputs[0].symbol.isin(["BBB", "DDD"])].reset_index(drop=True), outputs[2])
    other_seed = demo("predict", DEMO, "-i", tmp_path / "a.csv", "--by", "symbol", "-n", "3", "--seed", "12",
                      "--samples", "2", "-o", tmp_path / "d.csv")
    assert other_seed.code == 0
    assert not np.allclose(pd.read_csv(tmp_path / "d.csv")[COLUMNS], outputs[0][COLUMNS])


# --- usage and missing extras ------------------------------------------------------------------------


def test_many_options_need_by_and_fit_together(demo, tmp_path):
    source = write_csv(long_candles(["AAA"], rows=20), tmp_path / "long.csv")
    no_by = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "2", "--on-error", "skip")
    assert no_by.code == 2 and "add --by COLUMN" in no_by.stderr
    one_sample = demo("predict", DEMO, "-i", source, "--by", "symbol", "-n", "2", "--quantiles", "0.5")
    assert one_sample.code == 2 and "--samples" in one_sample.stderr
    bad_q = demo("predict", DEMO, "-i", source, "--by", "symbol", "-n", "2", "--samples", "2", "--quantiles", "1.5")
    assert bad_q.code == 2 and "1.5 is not between 0 and 1" in bad_q.stderr
    wrong_key = demo("predict", DEMO, "-i", source, "--by", "symbl", "-n", "2")
    assert wrong_key.code == 9 and "no key column 'symbl'" in wrong_key.stderr and "--by symbol" in wrong_key.stderr
    # The one-series form still prints its table.
    one = demo("-q", "predict", DEMO, "-i", SAMPLE_CSV, "-n", "2", "--seed", "1")
    assert one.code == 0 and one.stdout.splitlines()[0].split()[0] == "TIMESTAMP"


def hidden(cli: Cli, tmp_path, module: str) -> dict:
    """An environment in which `import module` raises ImportError."""
    fake = tmp_path / f"no-{module}" / module
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise ImportError('{module} is hidden by the test')\n")
    return {"PYTHONPATH": os.pathsep.join([str(fake.parent), cli.env()["PYTHONPATH"]])}


def test_many_parquet_and_ray_without_their_extras_exit_10(demo, tmp_path):
    source = write_csv(long_candles(["AAA"], rows=20), tmp_path / "long.csv")
    parquet = demo("predict", DEMO, "-i", source, "--by", "symbol", "-n", "2", "-o", tmp_path / "x.parquet",
                   env=hidden(demo, tmp_path, "pyarrow"))
    assert parquet.code == 10, parquet.output
    assert "pip install 'kronos-registry[parquet]'" in parquet.stderr
    ray = demo("predict", DEMO, "-i", source, "--by", "symbol", "-n", "2", "--ray",
               env=hidden(demo, tmp_path, "ray"))
    assert ray.code == 10, ray.output
    assert "pip install 'kronos-registry[ray]'" in ray.stderr and "Traceback" not in ray.output


# --- Ray ---------------------------------------------------------------------------------------------


def test_ray_local_cluster_output_equals_the_local_run(demo, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'kronos-registry[ray]')")
    pytest.importorskip("ray.data", reason="ray[data] is not installed")
    from kronos_registry.api import Registry
    from kronos_registry.services.distributed import run_on_ray
    from kronos_registry.services.forecast import ForecastParams
    from kronos_registry.services.many import read_series, run_local

    monkeypatch.setenv("RAY_DISABLE_DOCKER_CPU_WARNING", "1")
    # ray.init sets PYTHONBREAKPOINT in this process's environment: undone after the test, so
    # the later tests' subprocesses do not inherit ray's debugger hook.
    monkeypatch.setenv("PYTHONBREAKPOINT", os.environ.get("PYTHONBREAKPOINT", ""))
    if not os.environ["PYTHONBREAKPOINT"]:
        monkeypatch.delenv("PYTHONBREAKPOINT")
    keys = [f"S{i:02d}" for i in range(30)]
    source = write_csv(long_candles(keys, rows=24, step=5), tmp_path / "long.csv")
    series = read_series(source, "symbol", pred_len=3, context=512)
    job = ForecastParams(pred_len=3, samples=2, seed=3)
    requests = series.requests(job)
    local = run_local(Registry(store=demo.store, offline=True).load_predictor(DEMO), requests,
                      by="symbol", sampling=job)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        done = []
        on_ray = run_on_ray(requests, by="symbol", sampling=job, name=DEMO, registry=None, store=str(demo.store),
                            offline=True, max_batch=8, progress=done.append)
    finally:
        ray.shutdown()
    assert sum(done) == len(keys)
    assert list(on_ray.dtypes) == list(local.dtypes)
    close_enough(on_ray, local)


def test_ray_cli_starts_a_local_cluster_and_writes_the_local_runs_output(demo, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'kronos-registry[ray]')")
    pytest.importorskip("ray.data", reason="ray[data] is not installed")
    source = write_csv(long_candles([f"S{i:02d}" for i in range(24)], rows=20, step=5), tmp_path / "long.csv")
    common = ["predict", DEMO, "-i", source, "--by", "symbol", "-n", "3", "--seed", "9", "--samples", "2"]
    local = demo(*common, "-o", tmp_path / "local.csv")
    assert local.code == 0, local.output
    # 24 series, batches of 16: two actors at most, whatever the machine's core count.
    on_ray = demo(*common, "-o", tmp_path / "ray.csv", "--ray", env={"RAY_DISABLE_DOCKER_CPU_WARNING": "1"},
                  timeout=300)
    assert on_ray.code == 0, on_ray.output
    assert "ray: starting a local cluster, 24 series" in on_ray.stderr and "on ray (local cluster)" in on_ray.stderr
    close_enough(pd.read_csv(tmp_path / "ray.csv"), pd.read_csv(tmp_path / "local.csv"))
