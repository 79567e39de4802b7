"""The packaged kronos-demo: made by our own finetune on real candles, with its lineage and card.

scripts/make_demo_model.py trains it (minutes) and rewrites its entries; these tests check what
it wrote, without retraining: the lineage names the shipped weights, the weights are trained
(far better than the seeded random start they began from), the README's candles are held out,
and the card states the held-out evaluation. The script's own pieces are tested on small inputs.
"""

from __future__ import annotations

import gzip
import io
import sys
import zipfile

import pandas as pd
import pytest
import torch

from kronos_registry.services.lineage import Lineage, file_sha256
from tests.support.cli import DEMO, DEMO_MODEL_DIR, DEMO_TOKENIZER, DEMO_TOKENIZER_DIR, PACKAGE_DIR, REPO_ROOT, Cli

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import make_demo_model  # noqa: E402

EXCERPT = PACKAGE_DIR / "data" / "spx_daily.csv"


@pytest.fixture(scope="module")
def entries():
    from kronos_registry.services.registry import PACKAGED_REGISTRY, Registry

    registry = Registry(PACKAGED_REGISTRY, offline=True)
    return registry.get(DEMO), registry.get(DEMO_TOKENIZER)


def test_lineage_names_the_shipped_weights_and_the_data(entries):
    model, tokenizer = entries
    lineage = Lineage.from_mapping(model.lineage)
    assert lineage.base == "kronos-demo-init" and lineage.tokenizer == DEMO_TOKENIZER and lineage.tokenizer_trained
    assert lineage.weights_sha256["model"] == file_sha256(DEMO_MODEL_DIR / "model.safetensors")
    assert lineage.data.path == make_demo_model.DATA_NAME and lineage.data.series == 2 and lineage.data.by == "symbol"
    assert lineage.data.first.startswith("1999-01-04") and lineage.data.last.startswith("2018-12-31")
    assert {span.key for span in lineage.splits["test"]} == set(make_demo_model.SERIES)
    assert lineage.hyperparameters["seed"] == make_demo_model.SEED
    made = Lineage.from_mapping(tokenizer.lineage)
    assert made.weights_sha256["tokenizer"] == file_sha256(DEMO_TOKENIZER_DIR / "model.safetensors")


def test_card_states_the_held_out_evaluation(entries):
    card = " ".join(entries[0].description.split())
    assert "S&P 500 and NASDAQ" in card and "Held-out evaluation" in card
    assert "against naive" in card and ("does NOT beat the naive forecast" in card or "BEATS" in card)


def test_readme_candles_are_real_and_never_trained_on(entries):
    from kronos_registry.candles import read_candles

    candles = read_candles(EXCERPT)
    assert len(candles) == make_demo_model.EXCERPT_BARS
    assert str(candles.timestamps.iloc[-1].date()) == "2018-12-31"
    lineage = Lineage.from_mapping(entries[0].lineage)
    trained_end = max(pd.Timestamp(s.last) for s in lineage.trained_spans() if s.key == "SPX")
    (test_span,) = [s for s in lineage.splits["test"] if s.key == "SPX"]
    # the forecast from the excerpt starts after its last bar: beyond every bar the weights saw
    assert trained_end < pd.Timestamp(test_span.first) <= candles.timestamps.iloc[-1]


def _excerpt_windows(lookback: int = 120, horizon: int = 20):
    """Windows of the README's excerpt, normalised as training normalises them."""
    from kronos_registry.services.training.data import Part, Windows, load_training_data

    data = load_training_data(str(EXCERPT), None)
    windows = Windows(data, [Part(0, 0, len(data.series[0]))], lookback=lookback, horizon=horizon, stride=40)
    return windows.batch(range(len(windows)))


def test_weights_are_trained_far_beyond_their_random_start(tmp_path):
    from make_demo_checkpoint import write_demo

    from kronos_registry.kronos import Kronos, KronosTokenizer
    from kronos_registry.kronos.losses import encode_tokens, predictor_loss, tokenizer_loss

    write_demo(tmp_path)
    x, stamp = _excerpt_windows()
    losses = {}
    for name, folder in (("trained", DEMO_MODEL_DIR.parent), ("random", tmp_path)):
        tok = KronosTokenizer.from_pretrained(folder / "tokenizer").eval()
        model = Kronos.from_pretrained(folder / "model").eval()
        with torch.no_grad():
            losses[name] = (tokenizer_loss(tok, x).full.item(),
                            predictor_loss(model, *encode_tokens(tok, x), stamp).loss.item())
    assert losses["trained"][0] < 0.5 * losses["random"][0], losses    # reconstruction
    assert losses["trained"][1] < 0.6 * losses["random"][1], losses    # next-token cross-entropy


def test_show_prints_the_card_and_lineage_and_verify_passes(tmp_path):
    cli = Cli(tmp_path)
    shown = cli("show", DEMO)
    assert shown.code == 0, shown.output
    assert "fine-tuned" in shown.stdout and "indices_daily.csv" in shown.stdout
    assert "Held-out evaluation" in " ".join(shown.stdout.split())
    assert cli("sync", DEMO).code == 0
    verified = cli("verify", DEMO)
    assert verified.code == 0, verified.output


# ---------------------------------------------------------------------- the script's pieces


def _fake_wheel(path, rows=3):
    header = "Date,Open,High,Low,Close,Adj Close,Volume\n"
    lines = "".join(f"1/{4 + i}/1999,{10 + i},{12 + i},{9 + i},{11 + i},{11 + i},{1000 * (i + 1)}\n"
                    for i in range(rows))
    with zipfile.ZipFile(path, "w") as archive:
        for member in make_demo_model.SERIES.values():
            archive.writestr(member, gzip.compress((header + lines).encode()))
    return path


def test_indices_are_read_out_of_the_wheel_as_one_long_table(tmp_path):
    frame = make_demo_model.read_indices(_fake_wheel(tmp_path / "arch.whl"))
    assert list(frame.columns) == ["symbol", "timestamps", "open", "high", "low", "close", "volume"]
    assert frame.groupby("symbol").size().to_dict() == {"NASDAQ": 3, "SPX": 3}
    assert str(frame["timestamps"].iloc[0].date()) == "1999-01-04" and frame["close"].iloc[2] == 13.0
    first, second = (make_demo_model.write_table(frame, tmp_path / n).read_bytes() for n in ("a.csv", "b.csv"))
    assert first == second and first.startswith(b"symbol,timestamps,open") and b"1999-01-04,10.0000" in first


def test_only_the_marked_block_is_replaced():
    text = "a:\n  # >>> x (note)\n  x:\n    old: 1\n  # <<< x\n  y:\n    keep: 2\n"
    out = make_demo_model.replace_block(text, "x", ["  # >>> x (note)", "  x:", "    new: 3", "  # <<< x"])
    assert out == "a:\n  # >>> x (note)\n  x:\n    new: 3\n  # <<< x\n  y:\n    keep: 2\n"


@pytest.mark.parametrize("verdict, says", [("worse", "does NOT beat the naive forecast"),
                                           ("no detectable difference", "does NOT beat the naive forecast"),
                                           ("better", "BEATS the best baseline")])
def test_card_says_what_the_evaluation_found(verdict, says):
    rows = [{"model": m, "column": "close", "metric": "mae", "step": "all", "value": v}
            for m, v in (("kronos-demo-trained", 120.0), ("naive", 94.0), ("drift", 95.0))]
    rows.append({"model": "kronos-demo-trained", "column": "close", "metric": "skill_mase", "step": "all",
                 "value": 0.5, "ci_low": 0.1, "ci_high": 0.9, "verdict": verdict})
    card = " ".join(make_demo_model.card(pd.DataFrame(rows), 12.0))
    assert says in card and "MAE 120.00 against naive 94.00 and drift 95.00" in card


def test_card_lines_read_back_as_yaml():
    import yaml

    block = make_demo_model.entry_block("kronos-demo", {"base": "x"}, ["a card: with a colon"], ["params: 1"])
    parsed = yaml.safe_load(io.StringIO("models:\n" + "\n".join(block)))
    assert parsed["models"]["kronos-demo"] == {"display_name": "Kronos-demo", "description": "a card: with a colon",
                                               "params": 1, "lineage": {"base": "x"}}
