"""Fine-tuning: oracle-equal losses, windows as inference sees them, registration with lineage
(show, list, bundles, verify), resumption after kill -9, DDP equal to one process, every bad
input refused with nothing written, and a learning check.

Shapes are tiny (4 + 4 token bits, d_model 16/32): a run is a second or two of training on
the CPU. CLI calls run as subprocesses (tests/support/cli.py); torchrun and the kill driver
run as real processes too.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tests.support.cli import Cli, base_env
from tests.support.kronos_checkpoints import TINY_MODEL, TINY_TOKENIZER, write_checkpoint
from tests.support.registry_files import model_keys, registry_yaml, tokenizer_keys

TOK = {**TINY_TOKENIZER, "s1_bits": 4, "s2_bits": 4}
MOD = {**TINY_MODEL, "s1_bits": 4, "s2_bits": 4}
# Quick runs: 24 + 8 + 1 bar windows, a small batch, a learning rate that moves tiny weights.
FAST = ("--lookback", "24", "--horizon", "8", "--batch-size", "16", "--lr", "3e-3", "--seed", "3")


def periodic_candles(n: int = 360, period: int = 12, *, start: str = "2024-01-01", freq: str = "h") -> pd.DataFrame:
    """A learnable series: a sine of ``period`` bars in price and volume."""
    i = np.arange(n)
    close = 100 + 3 * np.sin(2 * np.pi * i / period)
    return pd.DataFrame({"timestamps": pd.date_range(start, periods=n, freq=freq), "open": close,
                         "high": close + 0.3, "low": close - 0.3, "close": close + 0.1,
                         "volume": 1000 + 50 * np.cos(2 * np.pi * i / period)})


def make_project(root: Path) -> Cli:
    """A Cli whose working folder holds models.yaml: tokenizer `tok`, models `base` and `other`
    (which shares `tok`), tiny checkpoints, and candles.csv."""
    cli = Cli(root)
    write_checkpoint(cli.cwd / "base" / "tok", "tokenizer", TOK)
    write_checkpoint(cli.cwd / "base" / "model", "model", MOD, seed=1)
    (cli.cwd / "models.yaml").write_text(registry_yaml(
        {"tok": tokenizer_keys("./base/tok", TOK)},
        {"base": model_keys("./base/model", "tok", MOD), "other": model_keys("./base/model", "tok", MOD)}))
    periodic_candles().to_csv(cli.cwd / "candles.csv", index=False)
    return cli


def snapshot(cli: Cli) -> tuple:
    """What "nothing written" compares: the registry file's bytes, the store's objects and refs."""
    store = cli.store
    listing = sorted(str(p.relative_to(store)) for sub in ("objects", "refs") if (store / sub).exists()
                     for p in (store / sub).rglob("*"))
    return (cli.cwd / "models.yaml").read_bytes(), listing


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a: Path, b: Path, atol: float = 0.0) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)
    assert worst <= atol, f"largest difference {worst:g}"


@pytest.fixture
def project(tmp_path) -> Cli:
    return make_project(tmp_path)


# --------------------------------------------------------------------------- losses and windows


def test_the_losses_equal_the_official_definitions_on_the_same_weights_and_batch():
    official = pytest.importorskip("model", reason="official Kronos package (kronos-model-arch) not installed")
    if not hasattr(official, "Kronos"):
        pytest.skip("the importable `model` package is not the official Kronos one")
    import torch.nn.functional as F

    from kronos_registry.kronos.losses import encode_tokens, predictor_loss, tokenizer_loss
    from kronos_registry.kronos.model import Kronos
    from kronos_registry.kronos.tokenizer import KronosTokenizer

    config_t = {**TOK, "n_enc_layers": 2, "n_dec_layers": 2}
    torch.manual_seed(0)
    their_t, their_m = official.KronosTokenizer(**config_t), official.Kronos(**MOD)
    with torch.no_grad():  # spread the tokenizer's weights so that codes vary
        for p in their_t.parameters():
            if p.dim() == 2:
                p.normal_(0, p.shape[1] ** -0.5)
    our_t, our_m = KronosTokenizer(**config_t), Kronos(**MOD)
    our_t.load_state_dict(their_t.state_dict())
    our_m.load_state_dict(their_m.state_dict())
    x = torch.randn(4, 17, 6)

    (coarse, full), bsq, _, _ = their_t(x)
    expected = (F.mse_loss(coarse, x) + F.mse_loss(full, x) + bsq) / 2
    ours = tokenizer_loss(our_t, x)
    assert abs(ours.loss.item() - expected.item()) < 1e-5
    assert abs(ours.full.item() - F.mse_loss(full, x).item()) < 1e-5

    s1, s2 = encode_tokens(our_t, x)
    assert len(set(s1.flatten().tolist())) > 1
    g = torch.Generator().manual_seed(0)
    stamp = torch.stack([torch.randint(0, k, (4, 17), generator=g) for k in (60, 24, 7, 32, 13)], -1).float()
    their_m.train()
    s1_logits, s2_logits = their_m(s1[:, :-1], s2[:, :-1], stamp[:, :-1], use_teacher_forcing=True,
                                   s1_targets=s1[:, 1:])
    expected = their_m.head.compute_loss(s1_logits, s2_logits, s1[:, 1:], s2[:, 1:])[0]
    assert abs(predictor_loss(our_m.train(), s1, s2, stamp).loss.item() - expected.item()) < 1e-5
    # validation (eval mode) scores the same causal objective: no dropout here, so the same number
    assert abs(predictor_loss(our_m.eval(), s1, s2, stamp).loss.item() - expected.item()) < 1e-5


def test_windows_are_normalised_by_their_history_alone_as_a_forecast_is_and_split_in_time(tmp_path):
    from kronos_registry.kronos.predictor import KronosPredictor
    from kronos_registry.services.training.data import Windows, load_training_data, split_by_time, split_spans

    frame = periodic_candles(200)
    frame.loc[150:, ["open", "high", "low", "close"]] *= 50   # a future far from its history's scale
    path = tmp_path / "c.csv"
    frame.to_csv(path, index=False)
    data = load_training_data(path)
    parts = split_by_time(data, val_fraction=0.2, test_fraction=0.1)
    spans = split_spans(data, parts)
    assert [(s.rows, s.first, s.last) for name in ("train", "validation", "test") for s in spans[name]] == [
        (140, "2024-01-01T00:00:00", "2024-01-06T19:00:00"), (40, "2024-01-06T20:00:00", "2024-01-08T11:00:00"),
        (20, "2024-01-08T12:00:00", "2024-01-09T07:00:00")]
    windows = Windows(data, parts["train"], lookback=24, horizon=8)
    assert len(windows) == 140 - 33 + 1
    x, stamps = windows.window(len(windows) - 1)          # the last window: bars 107..139
    history = data.series[0].values[107:131]
    predictor = KronosPredictor.__new__(KronosPredictor)
    predictor.price_cols, predictor.vol_col, predictor.amt_vol, predictor.clip, predictor.max_context = (
        ["open", "high", "low", "close"], "volume", "amount", 5, 512)
    hist_frame = pd.DataFrame(history, columns=["open", "high", "low", "close", "volume", "amount"])
    times = frame["timestamps"].iloc[107:131]
    expected = predictor.prepare(hist_frame, times, frame["timestamps"].iloc[131:132], 1).x
    np.testing.assert_allclose(x[:24], expected, atol=1e-6)
    mean, std = history.mean(0), history.std(0)
    np.testing.assert_allclose(x[24:], np.clip((data.series[0].values[131:140] - mean) / (std + 1e-5), -5, 5),
                               atol=1e-5)
    assert stamps.shape == (33, 5) and stamps[0, 1] == pd.Timestamp(times.iloc[0]).hour


def test_our_adamw_makes_torchs_adamw_update_and_the_schedule_warms_up_then_decays():
    from kronos_registry.services.training.optim import AdamW, warmup_cosine
    from kronos_registry.services.training.settings import OptimiserSettings

    torch.manual_seed(0)
    ours, theirs = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    theirs.load_state_dict(ours.state_dict())
    mine = AdamW(ours.parameters(), betas=(0.9, 0.95), weight_decay=0.1)
    reference = torch.optim.AdamW(theirs.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1,
                                  foreach=False)
    for step in range(5):
        x = torch.randn(16, 8)
        for module in (ours, theirs):
            module(x).pow(2).mean().backward()
        mine.step(1e-2)
        reference.step()
        mine.zero_grad()
        reference.zero_grad()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    rate = warmup_cosine(100, OptimiserSettings(lr=1e-3, clip_norm=1.0))
    assert rate(0) == pytest.approx(1e-4) and rate(3) == pytest.approx(1e-3)
    assert rate(50) < rate(4) and rate(99) < 2e-6


# --------------------------------------------------------------------------- registration and lineage


def test_finetune_registers_both_entries_with_their_lineage_in_show_list_bundles_and_verify(project):
    cli = project
    done = cli("finetune", "mine", "--from", "base", "-i", "candles.csv", "--tokenizer", "train",
               "--epochs", "1", "--max-steps", "6", *FAST, "--test-fraction", "0.1", "--json")
    assert done.code == 0, done.output
    result = json.loads(done.stdout)
    folder = cli.cwd / "checkpoints" / "mine"
    assert result["folder"] == str(folder) and result["tokenizer"] == "mine-tokenizer"
    assert {p.name for p in folder.iterdir()} == {"model", "tokenizer", "predictor-log.csv", "tokenizer-log.csv"}
    log = pd.read_csv(folder / "predictor-log.csv")
    assert list(log.columns[:4]) == ["epoch", "steps", "train_loss", "val_loss"] and len(log) == 1

    entries = yaml.safe_load((cli.cwd / "models.yaml").read_text())
    lineage = entries["models"]["mine"]["lineage"]
    assert entries["models"]["mine"]["source"] == "./checkpoints/mine/model"
    assert entries["models"]["mine"]["tokenizer"] == "mine-tokenizer"
    assert entries["tokenizers"]["mine-tokenizer"]["lineage"]["base"] == "tok"
    from kronos_registry.services.lineage import Lineage, file_sha256

    record = Lineage.from_mapping(lineage)
    assert record.base == "base" and record.tokenizer_trained and record.base_artifact.startswith("local--base--")
    assert record.data.sha256 == file_sha256(cli.cwd / "candles.csv") and record.data.rows == 360
    assert [s.rows for s in record.splits["test"]] == [36] and record.splits["train"][0].rows == 252
    assert record.weights_sha256 == {"model": file_sha256(folder / "model" / "model.safetensors"),
                                     "tokenizer": file_sha256(folder / "tokenizer" / "model.safetensors")}
    assert record.hyperparameters["lr"] == 3e-3 and record.hyperparameters["tokenizer"] == "train"
    assert record.best_validation_loss == pytest.approx(result["stages"]["predictor"]["best_val_loss"])

    shown = cli("show", "mine")
    assert shown.code == 0, shown.output
    assert "fine-tuned        from base (local--base--" in shown.stdout
    assert f"sha256 {record.data.sha256[:16]}" in shown.stdout and "validation" in shown.stdout
    listed = cli("list")
    assert "[fine-tune of base]" in listed.stdout and "[fine-tune of tok]" in listed.stdout
    as_json = json.loads(cli("list", "--json").stdout)
    assert {i["name"]: i["fine_tuned_from"] for i in as_json}["mine"] == "base"
    assert cli("verify", "mine").code == 0
    predicted = cli("predict", "mine", "-i", "candles.csv", "-n", "4", "--seed", "1", "-o", "out.csv")
    assert predicted.code == 0, predicted.output

    exported = cli("export", "mine", "-o", "mine.tar")
    assert exported.code == 0, exported.output
    with tarfile.open(cli.cwd / "mine.tar") as tar:
        bundled = yaml.safe_load(tar.extractfile("registry.yaml").read())
    assert Lineage.from_mapping(bundled["models"]["mine"]["lineage"]) == record
    assert bundled["tokenizers"]["mine-tokenizer"]["lineage"]["tokenizer_trained"] is True

    # a hand-edited record that names other weights: verify says so (exit 6)
    text = (cli.cwd / "models.yaml").read_text()
    (cli.cwd / "models.yaml").write_text(text.replace(record.weights_sha256["model"], "0" * 64))
    checked = cli("verify", "mine")
    assert checked.code == 6, checked.output
    assert "lineage.weights_sha256.model" in checked.output and "another checkpoint" in checked.output


def test_the_tokenizer_stage_runs_its_own_epochs_when_given_and_the_lineage_records_them(project):
    cli = project
    done = cli("finetune", "mine", "--from", "base", "-i", "candles.csv", "--tokenizer", "train", "--epochs", "1",
               "--tokenizer-epochs", "2", "--patience", "5", "--stride", "4", *FAST, "--json")
    assert done.code == 0, done.output
    folder = cli.cwd / "checkpoints" / "mine"
    assert len(pd.read_csv(folder / "tokenizer-log.csv")) == 2
    assert len(pd.read_csv(folder / "predictor-log.csv")) == 1
    lineage = json.loads(done.stdout)["lineage"]
    assert lineage["hyperparameters"]["tokenizer_epochs"] == 2 and lineage["hyperparameters"]["epochs"] == 1


def test_a_long_table_trains_one_model_over_its_series_keeping_a_shared_tokenizer_by_default(project):
    frames = [periodic_candles(200).assign(symbol="AAA"), periodic_candles(160, start="2024-02-01").assign(symbol="BBB")]
    pd.concat(frames).sort_values("timestamps").to_csv(project.cwd / "universe.csv", index=False)
    done = project("finetune", "kept", "--from", "base", "-i", "universe.csv", "--by", "symbol", "--epochs", "1",
                   "--max-steps", "2", *FAST)
    assert done.code == 0, done.output
    entries = yaml.safe_load((project.cwd / "models.yaml").read_text())
    assert entries["models"]["kept"]["tokenizer"] == "tok" and "kept-tokenizer" not in entries["tokenizers"]
    lineage = entries["models"]["kept"]["lineage"]
    assert set(lineage["weights_sha256"]) == {"model"} and not lineage["tokenizer_trained"]
    assert lineage["data"]["by"] == "symbol" and lineage["data"]["series"] == 2 and lineage["data"]["rows"] == 360
    assert [(s["key"], s["rows"], s["first"]) for s in lineage["splits"]["validation"]] == [
        ("AAA", 40, "2024-01-07T16:00:00"), ("BBB", 32, "2024-02-06T08:00:00")]


def test_a_parquet_file_of_one_series_reads_as_a_csv_does(tmp_path):
    pytest.importorskip("pyarrow", reason="pyarrow (the parquet extra) is not installed")
    from kronos_registry.services.training.data import load_training_data

    frame = periodic_candles(100)
    frame.to_csv(tmp_path / "c.csv", index=False)
    frame.to_parquet(tmp_path / "c.parquet")
    from_csv, from_parquet = load_training_data(tmp_path / "c.csv"), load_training_data(tmp_path / "c.parquet")
    np.testing.assert_allclose(from_csv.series[0].values, from_parquet.series[0].values)
    assert from_parquet.fingerprint.first == from_csv.fingerprint.first and from_parquet.fingerprint.rows == 100


# --------------------------------------------------------------------------- interruption, resumption


# The CLI with a signal sent to itself during the optimiser step number STOP_AT_STEP (counted over
# both stages): an interruption at a known point, not a race with a timer.
DRIVER = """
import os, signal, sys, time, torch
calls, real = [0], torch.nn.utils.clip_grad_norm_
def clip(*args, **kwargs):
    calls[0] += 1
    if calls[0] == int(os.environ["STOP_AT_STEP"]):
        os.kill(os.getpid(), getattr(signal, os.environ["STOP_SIGNAL"]))
        time.sleep(5)
    return real(*args, **kwargs)
torch.nn.utils.clip_grad_norm_ = clip
from kronos_registry.cli import main
main(sys.argv[1:])
"""


def test_kill_9_or_ctrl_c_mid_training_changes_nothing_and_resume_equals_an_uninterrupted_run(project):
    cli = project
    args = ("--from", "base", "-i", "candles.csv", "--tokenizer", "train", "--epochs", "2", "--max-steps", "12",
            "--checkpoint-every", "3", *FAST)
    whole = cli("finetune", "whole", *args, "--output", "whole")
    assert whole.code == 0, whole.output
    before = snapshot(cli)

    driver = cli.root / "driver.py"
    driver.write_text(DRIVER)

    def interrupted(step: int, sig: str, *extra: str) -> subprocess.CompletedProcess:
        env = {**cli.env(), "STOP_AT_STEP": str(step), "STOP_SIGNAL": sig}
        return subprocess.run([sys.executable, str(driver), "finetune", "parted", *args, "--output", "parted",
                               *extra], cwd=cli.cwd, env=env, capture_output=True, text=True, timeout=120)

    # Ctrl-C in the tokenizer stage (its 5th step; saved at step 3), then kill -9 in the predictor stage
    # (tokenizer: 12 steps, then the predictor's 8th step; saved at 6), then resume to the end
    stopped = interrupted(5, "SIGINT")
    assert stopped.returncode != 0 and snapshot(cli) == before, stopped.stderr
    killed = interrupted(12 - 3 + 8, "SIGKILL", "--resume")      # the resumed run starts at tokenizer step 3
    assert killed.returncode == -signal.SIGKILL and snapshot(cli) == before, killed.stderr
    assert (cli.cwd / "parted" / "resume" / "predictor.state.pt").is_file()
    resumed = cli("finetune", "parted", *args, "--output", "parted", "--resume")
    assert resumed.code == 0, resumed.output
    assert not (cli.cwd / "parted" / "resume").exists()
    for part in ("tokenizer", "model"):
        assert_same_weights(cli.cwd / "whole" / part, cli.cwd / "parted" / part, atol=1e-6)
    whole_log = pd.read_csv(cli.cwd / "whole" / "predictor-log.csv")
    parted_log = pd.read_csv(cli.cwd / "parted" / "predictor-log.csv")
    np.testing.assert_allclose(whole_log["val_loss"], parted_log["val_loss"], rtol=1e-6)


def test_a_second_run_into_an_unfinished_folder_needs_resume_and_resume_needs_the_same_settings(project):
    folder = project.cwd / "checkpoints" / "again" / "resume"
    folder.mkdir(parents=True)
    refused = project("finetune", "again", "--from", "base", "-i", "candles.csv", *FAST)
    assert refused.code == 2 and "--resume" in refused.stderr, refused.output
    (folder / "run.json").write_text(json.dumps({"name": "again", "hyperparameters": {"lr": 1.0}}))
    changed = project("finetune", "again", "--from", "base", "-i", "candles.csv", "--resume", *FAST)
    assert changed.code == 2 and "other settings" in changed.stderr and "hyperparameters.lr" in changed.stderr


# --------------------------------------------------------------------------- more than one process


def test_two_processes_under_torchrun_give_the_weights_of_one_with_the_same_global_batch(project):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip("torchrun is not installed beside this Python")
    cli = project
    args = ("--from", "base", "-i", "candles.csv", "--tokenizer", "keep", "--epochs", "1", "--max-steps", "6",
            "--device", "cpu", *FAST)
    one = cli("finetune", "one", *args, "--output", "one")
    assert one.code == 0, one.output
    env = {**cli.env(), "OMP_NUM_THREADS": "1"}
    two = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "kronos_registry",
                          "finetune", "two", *args, "--output", "two"], cwd=cli.cwd, env=env,
                         capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("added    two") == 1           # rank 0 alone registers and prints
    # the same up to the order of float additions (gradients summed over ranks), against steps
    # that moved the weights by ~1e-2
    assert_same_weights(cli.cwd / "one" / "model", cli.cwd / "two" / "model", atol=1e-4)
    moved = max(float((weights(cli.cwd / "base" / "model")[k] - w).abs().max())
                for k, w in weights(cli.cwd / "one" / "model").items())
    assert moved > 5e-3
    lineage = yaml.safe_load((cli.cwd / "models.yaml").read_text())["models"]["two"]["lineage"]
    assert lineage["hyperparameters"]["world_size"] == 2


# --------------------------------------------------------------------------- bad input: refused, nothing written


def _refused(cli: Cli, code: int, *args: str, name: str = "new") -> str:
    before = snapshot(cli)
    done = cli("finetune", name, *args)
    assert done.code == code, done.output
    assert "Traceback" not in done.output and "hint:" in done.stderr
    assert snapshot(cli) == before
    assert not (cli.cwd / "checkpoints" / name).exists()
    return done.stderr


def test_too_little_data_for_one_window_is_refused(project):
    periodic_candles(40).to_csv(project.cwd / "short.csv", index=False)
    said = _refused(project, 9, "--from", "base", "-i", "short.csv", *FAST)
    assert "too little data for one training window" in said and "--lookback" in said


def test_nan_candles_are_refused_naming_the_line_and_column(project):
    frame = periodic_candles()
    frame.loc[10, "close"] = np.nan
    frame.to_csv(project.cwd / "holes.csv", index=False)
    said = _refused(project, 9, "--from", "base", "-i", "holes.csv", *FAST)
    assert "line 12" in said and "close" in said


def test_a_base_whose_tokenizer_does_not_match_is_refused(project):
    other = {**TOK, "s1_bits": 8, "s2_bits": 8}
    write_checkpoint(project.cwd / "base" / "tok8", "tokenizer", other)
    text = registry_yaml({"tok": tokenizer_keys("./base/tok", TOK), "tok8": tokenizer_keys("./base/tok8", other)},
                         {"base": model_keys("./base/model", "tok", MOD), "odd": model_keys("./base/model", "tok8", MOD)})
    (project.cwd / "models.yaml").write_text(text)
    said = _refused(project, 6, "--from", "odd", "-i", "candles.csv", *FAST)
    assert "s1/s2 bits (8, 8)" in said and "`tokenizer:` of 'odd'" in said


def test_a_new_name_that_exists_is_refused(project):
    said = _refused(project, 2, "--from", "base", "-i", "candles.csv", *FAST, name="other")
    assert "already exists" in said


def test_an_unwritable_store_is_refused_before_training(project, tmp_path):
    from tests.support.readonly import read_only_view

    assert project("sync", "base").code == 0
    with read_only_view(project.store, tmp_path / "ro") as view:
        before = (project.cwd / "models.yaml").read_bytes()
        done = project("finetune", "new", "--from", "base", "-i", "candles.csv", "--store", str(view), *FAST)
        assert done.code == 11, done.output
        assert "read-only" in done.stderr and "hint:" in done.stderr
        assert (project.cwd / "models.yaml").read_bytes() == before
        assert not (project.cwd / "checkpoints").exists()


# --------------------------------------------------------------------------- it learns


def test_on_a_learnable_series_the_validation_loss_falls_by_at_least_half(project):
    from kronos_registry import finetune
    from kronos_registry.kronos.losses import encode_tokens, predictor_loss
    from kronos_registry.services.registry import load_module
    from kronos_registry.services.training.data import Windows, load_training_data, split_by_time

    data = load_training_data(project.cwd / "candles.csv")
    val = Windows(data, split_by_time(data, val_fraction=0.2, test_fraction=0)["validation"], lookback=24,
                  horizon=8)
    tok = load_module("tokenizer", project.cwd / "base" / "tok")
    base = load_module("model", project.cwd / "base" / "model")
    x, stamps = val.batch(range(len(val)))
    with torch.no_grad():
        before = float(predictor_loss(base, *encode_tokens(tok, x), stamps).loss)
    started, threads = time.monotonic(), torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: an oversubscribed pool is many times slower
    try:
        result = finetune("learned", "base", project.cwd / "candles.csv", tokenizer="keep", epochs=2, lr=3e-3,
                          batch_size=16, lookback=24, horizon=8, registry=project.cwd / "models.yaml",
                          store=project.store, offline=True, on_note=lambda text: None)
    finally:
        torch.set_num_threads(threads)
    after = result.stages["predictor"].best_val_loss
    assert after <= before / 2, (before, after, time.monotonic() - started)
    assert result.lineage.best_validation_loss == after


def test_the_python_face_exports_finetune_lazily():
    code = "import sys, kronos_registry; assert 'torch' not in sys.modules; print(kronos_registry.finetune.__module__)"
    done = subprocess.run([sys.executable, "-c", code], env=base_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "kronos_registry.services.training.finetune"
