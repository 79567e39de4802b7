"""`kronos-registry eval` (issue 21, items 2-6 and 9): real CLI processes over the packaged demo
model (tests/support/cli.py), the sample candles, long tables built from them, and a
"fine-tuned" entry whose lineage names the sample file, for the leakage guard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kronos_registry.services.lineage import DataFingerprint, Lineage, SeriesSpan, file_sha256
from tests.support.cli import DEMO, DEMO_MODEL_DIR, SAMPLE_CSV, Cli, synced_demo

FT = "demo-ft"
# A small, quick evaluation: 8 windows of 4 bars, 48 bars of history each.
QUICK = ["-n", "4", "--origins", "8", "--lookback", "48", "--seed", "3"]
# Origins every 16 bars over the whole sample: the older ones fall inside demo-ft's training span.
SPREAD = ["-n", "4", "--every", "16", "--lookback", "48", "--seed", "3"]
TRAINED_UNTIL = "2024-01-03T23:00:00"      # bar 450 of the sample candles


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Cli:
    """A store holding kronos-demo and demo-ft (the demo's weights, with a lineage naming the sample
    candles, 5-minute bars from 2024-01-02 09:30, as its training data up to bar 450). Tests that
    keep runs use clones."""
    root = tmp_path_factory.mktemp("eval")
    folder = root / "demo-ft"
    shutil.copytree(DEMO_MODEL_DIR, folder)
    registry = root / "models.yaml"
    registry.write_text(yaml.safe_dump({"schema": 1, "models": {FT: {
        "source": str(folder), "tokenizer": "kronos-demo-tokenizer", "context_length": 512,
        "lineage": trained_on(file_sha256(SAMPLE_CSV), TRAINED_UNTIL)}}}))
    cli = synced_demo(root / "main")
    cli.extra_env["KRONOS_REGISTRY_FILE"] = str(registry)
    synced = cli("sync", FT)
    assert synced.code == 0, synced.output
    return cli


def trained_on(sha: str, last: str) -> dict:
    span = SeriesSpan("series", 200, "2024-01-02T09:35:00", last)
    return Lineage(base=DEMO, base_artifact="local--kronos-demo--0", tokenizer="kronos-demo-tokenizer",
                   tokenizer_trained=False,
                   data=DataFingerprint(sha, str(SAMPLE_CSV), 512, 1, None, "2024-01-02T09:30:00", last),
                   splits={"train": (span,)}, hyperparameters={"lr": 1e-5}, best_validation_loss=0.5,
                   weights_sha256={"model": "0" * 64}, created="2025-01-01T00:00:00+00:00",
                   tool_version="test").to_dict()


@pytest.fixture
def fresh(demo, tmp_path) -> Cli:
    return demo.clone(tmp_path / "clone")


def stored_runs(cli: Cli, name: str = DEMO) -> list[Path]:
    folder = cli.store / "evals" / name
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def long_table(keys, rows: int = 120, step: int = 9) -> pd.DataFrame:
    """One series per key, each a different stretch of the sample candles on the same timestamps."""
    sample = pd.read_csv(SAMPLE_CSV)
    parts = []
    for i, key in enumerate(keys):
        part = sample.iloc[i * step:i * step + rows].copy()
        part["timestamps"] = sample["timestamps"].iloc[:rows].to_numpy()
        part.insert(0, "symbol", key)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------- the run, the table, the store


def test_eval_prints_a_table_and_a_plain_verdict_writes_the_report_and_keeps_the_run(fresh, tmp_path):
    report = tmp_path / "report.csv"
    result = fresh("eval", DEMO, "-i", SAMPLE_CSV, *QUICK, "-o", report)
    assert result.code == 0, result.output
    assert "Traceback" not in result.output
    head = result.stdout.splitlines()[0].split()
    assert head[:5] == ["NAME", "ROLE", "MAE", "RMSE", "MASE"] and "VERDICT" in head
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:4]}
    assert set(lines) == {DEMO, "naive", "drift"}
    assert f"{DEMO} does not beat naive" in result.stdout or f"{DEMO} does NOT beat naive" in result.stdout
    assert "records no lineage" not in result.stderr  # the demo's lineage: its training data is other candles
    assert "tiny demo model" in result.stderr

    rows = pd.read_csv(report)
    assert list(rows.columns[:6]) == ["model", "role", "column", "metric", "step", "value"]
    metric_rows = rows[~rows.metric.str.startswith("skill_")]
    assert not metric_rows.duplicated(["model", "column", "metric", "step"]).any()
    assert set(metric_rows.step) == {"1", "2", "3", "4", "all"}
    assert set(metric_rows.metric) == {"mae", "rmse", "mase", "direction"}
    assert set(metric_rows.model) == {DEMO, "naive", "drift"}
    skill = rows[rows.metric == "skill_mase"].iloc[0]
    assert skill.model == DEMO and skill.against in ("naive", "drift") and skill.ci_low <= skill.ci_high
    assert (metric_rows.windows == 8).all()

    (kept,) = stored_runs(fresh)
    record = json.loads(kept.read_text())
    assert record["model"] == DEMO and record["artifact"].startswith("local--kronos-demo--")
    assert record["data"]["sha256"] == file_sha256(SAMPLE_CSV) and record["seed"] == 3
    assert record["windows"]["count"] == 8 and record["settings"]["horizon"] == 4
    assert kept.stem in result.stderr

    history = fresh("eval", "--history", DEMO)
    assert history.code == 0 and kept.stem in history.stdout and "sample_candles.csv" in history.stdout
    shown = fresh("show", DEMO)
    assert shown.code == 0 and "evaluated" in shown.stdout and kept.stem in shown.stdout
    info = json.loads(fresh("show", DEMO, "--json").stdout)
    (latest,) = info["evaluations"]
    assert latest["run_id"] == kept.stem and latest["current"] is True
    assert latest["metrics"]["mase"] == pytest.approx(float(rows.query("model == @DEMO and metric == 'mase' "
                                                                        "and step == 'all'").value.iloc[0]))


def test_a_rerun_with_the_same_inputs_and_seed_gives_the_same_numbers(fresh):
    first = fresh("eval", DEMO, "-i", SAMPLE_CSV, *QUICK, "--samples", "3", "--json")
    second = fresh("eval", DEMO, "-i", SAMPLE_CSV, *QUICK, "--samples", "3", "--json")
    assert first.code == 0 and second.code == 0, first.output + second.output
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["rows"] == b["rows"] and len(a["rows"]) > 50
    records = [json.loads(p.read_text()) for p in stored_runs(fresh)]
    assert len(records) == 2 and records[0]["rows"] == records[1]["rows"]
    assert records[0]["run_id"].split("-")[1] == records[1]["run_id"].split("-")[1]   # the inputs' digest
    other = fresh("eval", DEMO, "-i", SAMPLE_CSV, *QUICK[:-1], "4", "--samples", "3", "--json", "--no-keep")
    assert json.loads(other.stdout)["rows"] != a["rows"]                     # another seed, other draws
    assert len(stored_runs(fresh)) == 2


def test_samples_score_crps_pinball_coverage_and_the_plot_is_drawn(fresh, tmp_path):
    pytest.importorskip("matplotlib")
    png, report = tmp_path / "eval.png", tmp_path / "report.json"
    result = fresh("eval", DEMO, "-i", SAMPLE_CSV, *QUICK, "--samples", "4", "--quantiles", "0.1,0.5,0.9",
                   "--plot", png, "-o", report)
    assert result.code == 0, result.output
    body = json.loads(report.read_text())
    metrics = {row["metric"] for row in body["rows"] if row["model"] == DEMO}
    assert {"crps", "pinball_q0.1", "pinball_q0.9", "coverage_0.8", "calibration_q0.5", "skill_crps"} <= metrics
    assert "random-walk" in {row["model"] for row in body["rows"]}
    assert body["verdicts"] and body["runs"][0]["stored"]
    from matplotlib.image import imread

    pixels = imread(png)[:, :, :3].reshape(-1, 3)
    colours = {tuple(p) for p in np.round(pixels * 255).astype(int)[:: max(1, len(pixels) // 200_000)]}
    # one line colour per method (blue, orange, green, red) plus text and grid: far from a blank page
    saturated = {c for c in colours if max(c) - min(c) > 80}
    assert png.stat().st_size > 20_000 and len(saturated) > 20


def test_ic_and_rank_ic_across_five_series(fresh, tmp_path):
    data = tmp_path / "long.csv"
    long_table(["A", "B", "C", "D", "E"]).to_csv(data, index=False)
    result = fresh("eval", DEMO, "-i", data, "--by", "symbol", "-n", "3", "--origins", "4", "--lookback", "32",
                   "--json", "--no-keep")
    assert result.code == 0, result.output
    rows = pd.DataFrame(json.loads(result.stdout)["rows"])
    ic = rows[(rows.model == DEMO) & rows.metric.isin(["ic", "rank_ic"]) & (rows.step == "all")]
    assert len(ic) == 2 and (ic.windows == 4).all()                  # 4 origins, 5 series each
    assert ic.value.between(-1, 1).all()
    assert (rows[(rows.metric == "mae")].windows == 20).all()        # 5 series x 4 origins


def test_a_read_only_store_evaluates_and_says_the_results_were_not_kept(demo, tmp_path):
    from tests.support.readonly import read_only_view

    with read_only_view(demo.store, tmp_path / "ro-store") as view:
        reader = Cli(tmp_path / "ro", store=view, env=demo.extra_env)
        result = reader("eval", DEMO, "-i", SAMPLE_CSV, *QUICK)
        assert result.code == 0, result.output
        assert "read-only" in result.stderr and "not kept" in result.stderr
        assert not (view / "evals").exists()


# --------------------------------------------------------------------------- the leakage guard


def test_a_fine_tuned_entry_is_refused_on_its_training_span_and_marked_with_allow_overlap(fresh, tmp_path):
    refused = fresh("eval", FT, DEMO, "-i", SAMPLE_CSV, *SPREAD)
    assert refused.code == 9, refused.output
    assert "refusing to evaluate 'demo-ft'" in refused.stderr and "series 'series'" in refused.stderr
    assert "--allow-overlap" in refused.stderr and "Traceback" not in refused.output
    assert stored_runs(fresh, FT) == [] and stored_runs(fresh, DEMO) == []

    report = tmp_path / "report.csv"
    allowed = fresh("eval", FT, DEMO, "-i", SAMPLE_CSV, *SPREAD, "--allow-overlap", "-o", report)
    assert allowed.code == 0, allowed.output
    assert f"{FT} *" in allowed.stdout and "trained on some of these windows" in allowed.stdout
    rows = pd.read_csv(report)
    assert rows[rows.model == FT].overlap.all() and not rows[rows.model == DEMO].overlap.any()
    (record,) = [json.loads(p.read_text()) for p in stored_runs(fresh, FT)]
    # windows scored on bars 48..450 are inside: origins 60, 76, ..., 444 of the 29
    assert record["guard"]["checked"] and record["guard"]["overlapping_windows"] == 25
    assert "trained on" in fresh("show", FT).stdout


def test_candles_after_the_trained_span_are_evaluated_with_the_guard_passed(fresh, tmp_path):
    later = tmp_path / "later.csv"
    pd.read_csv(SAMPLE_CSV).iloc[451:].to_csv(later, index=False)      # after the trained span
    result = fresh("eval", FT, "-i", later, *QUICK, "--no-keep")
    assert result.code == 0, result.output
    assert "records no lineage" not in result.stderr and "*" not in result.stdout.splitlines()[1]


# --------------------------------------------------------------------------- bad input: one clear error each


def bad_long_table(tmp_path) -> Path:
    table = long_table(["AAA", "BBB"], rows=100)
    table.loc[table.index[(table.symbol == "BBB")][10], "close"] = np.nan
    path = tmp_path / "nan.csv"
    table.to_csv(path, index=False)
    return path


def short_long_table(tmp_path) -> Path:
    table = pd.concat([long_table(["AAA"], rows=100), long_table(["BBB"], rows=20)])
    path = tmp_path / "short.csv"
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("case, args, expected", [
    ("horizon leaves no origin", ["-n", "600"], ["series 'series' has 512 bars", "no forecast origin", "-n"]),
    ("lookback leaves no origin", ["-n", "8", "--lookback", "510"], ["lookback 510 + horizon 8", "--lookback"]),
    ("unknown metric", ["-n", "4", "--metrics", "mae,masse"], ["unknown metric 'masse'", "did you mean mase"]),
    ("unknown baseline", ["-n", "4", "--baselines", "naive,drfit"], ["unknown baseline 'drfit'",
                                                                    "did you mean drift"]),
    ("sample metric without samples", ["-n", "4", "--metrics", "crps"], ["crps scores a distribution", "--samples"]),
    ("ic of one series", ["-n", "4", "--metrics", "ic"], ["at least 5 series", "--by"]),
    ("seasonal longer than the history", ["-n", "4", "--lookback", "20", "--baselines", "seasonal:48"],
     ["too short", "seasonal:N needs N bars"]),
])
def test_bad_settings_get_one_clear_error_and_change_nothing(demo, case, args, expected):
    result = demo("eval", DEMO, "-i", SAMPLE_CSV, *args)
    assert result.code == 9, f"{case}: {result.output}"
    assert result.stderr.startswith("error: ") and "hint: " in result.stderr and "Traceback" not in result.output
    for fragment in expected:
        assert fragment in result.stderr, f"{case}: {fragment!r} not in {result.stderr!r}"
    assert stored_runs(demo) == []


def test_a_series_shorter_than_one_window_and_nans_are_named_by_series(demo, tmp_path):
    short = demo("eval", DEMO, "-i", short_long_table(tmp_path), "--by", "symbol", "-n", "4", "--lookback", "40")
    assert short.code == 9, short.output
    assert "series 'BBB' has 20 bars" in short.stderr and "Traceback" not in short.output
    nan = demo("eval", DEMO, "-i", bad_long_table(tmp_path), "--by", "symbol", "-n", "4")
    assert nan.code == 9, nan.output
    assert "symbol=BBB" in nan.stderr and "close" in nan.stderr and "cannot be evaluated" in nan.stderr
    assert stored_runs(demo) == []


@pytest.mark.parametrize("args, message", [
    ([DEMO, "-n", "4"], "-i/--input"),
    ([DEMO, "-i", str(SAMPLE_CSV)], "-n/--horizon"),
    ([DEMO, "-i", str(SAMPLE_CSV), "-n", "4", "--origins", "3", "--every", "2"], "give one"),
    (["-i", str(SAMPLE_CSV), "-n", "4"], "name one or more models"),
    ([DEMO, "-i", str(SAMPLE_CSV), "-n", "4", "--quantiles", "0.1,0.9"], "--samples"),
    (["--history"], "one model"),
])
def test_usage_errors_exit_2(demo, args, message):
    result = demo("eval", *args)
    assert result.code == 2 and message in result.stderr, result.output


def test_an_unknown_model_is_exit_4_before_the_data_is_read(demo):
    result = demo("eval", "kronos-dem", "-i", "no-such-file.csv", "-n", "4")
    assert result.code == 4 and "kronos-demo" in result.stderr, result.output


# --------------------------------------------------------------------------- the Python face


def test_evaluate_from_python_gives_the_cli_numbers(demo, tmp_path):
    import kronos_registry

    cli = demo("eval", DEMO, "-i", SAMPLE_CSV, *QUICK, "--json", "--no-keep")
    assert cli.code == 0, cli.output
    frame = kronos_registry.evaluate(DEMO, str(SAMPLE_CSV), horizon=4, origins=8, lookback=48, seed=3,
                                     store=demo.store, registry=demo.extra_env["KRONOS_REGISTRY_FILE"],
                                     offline=True, keep=False)
    assert isinstance(frame, pd.DataFrame) and frame.attrs["verdicts"] and frame.attrs["runs"][0]["stored"] is None
    expected = pd.DataFrame(json.loads(cli.stdout)["rows"])
    mine = frame[frame.metric == "mase"].set_index(["model", "step"])["value"]
    theirs = expected[expected.metric == "mase"].set_index(["model", "step"])["value"]
    assert mine.sort_index().to_dict() == pytest.approx(theirs.sort_index().to_dict(), rel=1e-9)
    # a DataFrame works too (fingerprinted by its CSV text)
    sample = pd.read_csv(SAMPLE_CSV)
    again = kronos_registry.evaluate(DEMO, sample, horizon=4, origins=8, lookback=48, seed=3, store=demo.store,
                                     offline=True, keep=False, metrics=["mae"], baselines=["naive"])
    assert set(again.metric) == {"mae", "skill_mase"}
