"""Remake `kronos-demo` with our own `finetune`, on real daily candles no one here wrote.

    .venv/bin/python scripts/make_demo_model.py            # fetch, train, evaluate, write (minutes)
    .venv/bin/python scripts/make_demo_model.py --dry-run  # the same, writing nothing into the package

The candles are the S&P 500 and NASDAQ Composite daily OHLCV, 4 Jan 1999 .. 31 Dec 2018
(5,031 bars each), that the `arch` package ships in its data folder. The script downloads that
wheel with pip (no install: a wheel is a zip file, two CSVs are read out of it), so nothing of
it is committed but the trained weights and a short excerpt for the README's main job.

Steps, each one a public face of this package, so the demo is what a user would make:

1. the two indices as one long table (``symbol`` names the series), bytes fixed by the inputs;
2. a random start (scripts/make_demo_checkpoint.py's seeded tiny model) registered in a
   scratch registry file and store as ``kronos-demo-init``;
3. ``kronos_registry.finetune`` from it, tokenizer trained too, fixed seed, with a held-out
   test tail of each series (the last 10%, never trained or validated on);
4. ``kronos_registry.evaluate`` on that tail against the naive and drift baselines;
5. the weights are copied into kronos_registry/data/demo/, and the two demo entries of
   kronos_registry/models.yaml are rewritten between their ``>>>``/``<<<`` markers with the
   lineage and a card that states the evaluation as it came out, beaten or not.

The result is reproducible on one machine (fixed seeds, single-threaded torch); another CPU
may round differently, so the card carries the numbers of the run that wrote it.
"""

from __future__ import annotations

import argparse
import gzip
import io
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a plain checkout
sys.path.insert(0, str(ROOT / "scripts"))

ARCH_WHEEL = "arch==8.0.0"      # its data folder: sp500.csv.gz and nasdaq.csv.gz (Yahoo Finance daily bars)
SERIES = {"SPX": "arch/data/sp500/sp500.csv.gz", "NASDAQ": "arch/data/nasdaq/nasdaq.csv.gz"}
DATA_NAME = "indices_daily.csv"  # the long table's file name, as the lineage records it
EXCERPT = ROOT / "kronos_registry" / "data" / "spx_daily.csv"
EXCERPT_BARS = 600               # the README's main job: the last bars of the S&P 500
DEMO_DIR = ROOT / "kronos_registry" / "data" / "demo"
REGISTRY = ROOT / "kronos_registry" / "models.yaml"
CACHE = ROOT / ".cache" / "demo-data"   # git-ignored: the downloaded wheel

SEED = 20240601
# Trained from a random start, so a far larger learning rate than the 1e-5 advised for
# fine-tuning a pretrained model; the rest is sized to take minutes on 2 CPU cores.
TRAINING = {"tokenizer": "train", "tokenizer_epochs": 12, "epochs": 10, "batch_size": 32, "lr": 2e-3,
            "tokenizer_lr": 3e-3, "lookback": 480, "horizon": 20, "val_fraction": 0.15, "test_fraction": 0.1,
            "stride": 5, "seed": SEED, "patience": 2, "checkpoint_every": 10_000}
EVALUATION = {"horizon": 10, "origins": 20, "seed": SEED, "baselines": "naive,drift"}


# ---------------------------------------------------------------------- 1. the candles


def fetch_wheel(cache: Path) -> Path:
    """The arch wheel, downloaded once with pip (no dependencies, no install)."""
    found = sorted(cache.glob("arch-*.whl"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        "-q", "-d", str(cache), ARCH_WHEEL], check=True)
        found = sorted(cache.glob("arch-*.whl"))
    return found[-1]


def read_indices(wheel: Path):
    """One long frame: symbol, timestamps, open, high, low, close, volume (adjusted close dropped)."""
    import pandas as pd

    frames = []
    with zipfile.ZipFile(wheel) as archive:
        for symbol, member in SERIES.items():
            raw = pd.read_csv(io.BytesIO(gzip.decompress(archive.read(member))))
            frame = pd.DataFrame({"symbol": symbol, "timestamps": pd.to_datetime(raw["Date"], format="%m/%d/%Y")})
            for column in ("Open", "High", "Low", "Close", "Volume"):
                frame[column.lower()] = raw[column].astype("float64")
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def write_table(frame, path: Path) -> Path:
    """Fixed formatting, so the file's bytes (and the lineage's sha256) depend on the inputs only."""
    frame.to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.4f", lineterminator="\n")
    return path


# ---------------------------------------------------------------------- 2. the random start


def scratch_registry(work: Path) -> Path:
    """A registry file naming the seeded random start, beside its folders."""
    from make_demo_checkpoint import write_demo

    write_demo(work / "init")
    path = work / "models.yaml"
    path.write_text(
        "schema: 1\n"
        "tokenizers:\n"
        "  kronos-demo-init-tokenizer:\n"
        "    description: the seeded random start of the demo tokenizer\n"
        "    source: init/tokenizer\n"
        "models:\n"
        "  kronos-demo-init:\n"
        "    description: the seeded random start of the demo model\n"
        "    source: init/model\n"
        "    tokenizer: kronos-demo-init-tokenizer\n"
        "    context_length: 512\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------- 3-4. train, evaluate


def train(registry: Path, store: Path, data: Path):
    import kronos_registry

    return kronos_registry.finetune("kronos-demo-trained", "kronos-demo-init", str(data), by="symbol",
                                    device="cpu", registry=str(registry), store=str(store), offline=True,
                                    progress=sys.stderr.isatty(), **TRAINING)


def evaluate(registry: Path, store: Path, data: Path):
    import kronos_registry

    report = kronos_registry.evaluate("kronos-demo-trained", str(data), by="symbol", device="cpu", keep=False,
                                      registry=str(registry), store=str(store), offline=True, **EVALUATION)
    return report


def close_mae(report, model: str) -> float:
    rows = report[(report["model"] == model) & (report["column"] == "close") & (report["metric"] == "mae")
                  & (report["step"].astype(str) == "all")]
    return float(rows["value"].iloc[0])


# ---------------------------------------------------------------------- 5. the package


def card(report, seconds: float) -> list[str]:
    """The evaluation in a few plain lines, whatever it says."""
    mae = {name: close_mae(report, name) for name in ("kronos-demo-trained", "naive", "drift")}
    skill = report[report["metric"] == "skill_mase"].iloc[0]
    verdict = str(skill["verdict"])
    beats = verdict == "better"
    h, k = EVALUATION["horizon"], EVALUATION["origins"]
    return [
        f"Trained by scripts/make_demo_model.py (our own finetune, seed {SEED}, {seconds:.0f} s on 2 CPU cores) from",
        "a random start on real daily candles: the S&P 500 and NASDAQ Composite, 1999-01-04 .. 2018-12-31",
        "(the arch package's data folder), the last 10% of each series held out. A tiny model (380k",
        f"parameters): try the tool with it, do not trade on it. Held-out evaluation ({k} origins x {h} days",
        (f"per series, close): MAE {mae['kronos-demo-trained']:.2f} against naive {mae['naive']:.2f} and drift "
         f"{mae['drift']:.2f};"),
        ("it BEATS the best baseline (MASE difference {:+.3f}, 95% interval {:+.3f} .. {:+.3f})."
         if beats else
         "it does NOT beat the naive forecast (MASE difference {:+.3f}, 95% interval {:+.3f} .. {:+.3f}, "
         f"verdict: {verdict}).").format(float(skill["value"]), float(skill["ci_low"]), float(skill["ci_high"])),
    ]


def entry_block(name: str, lineage: dict, description: list[str], body: list[str]) -> list[str]:
    import yaml

    dumped = yaml.safe_dump({"lineage": lineage}, sort_keys=False, width=100).splitlines()
    return ([f"  # >>> {name} (written by scripts/make_demo_model.py: edit that, not this)", f"  {name}:",
             f"    display_name: K{name[1:]}", "    description: >-"]
            + [f"      {line}" for line in description] + [f"    {line}" for line in body]
            + [f"    {line}" for line in dumped] + [f"  # <<< {name}"])


def replace_block(text: str, name: str, block: list[str]) -> str:
    start, end = f"  # >>> {name} ", f"  # <<< {name}\n"
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    return head + "\n".join(block) + "\n" + tail


def write_package(result, report, seconds: float, registry_text: str) -> str:
    import yaml

    from kronos_registry.services.lineage import Lineage

    trained = Path(result.folder)
    for role in ("tokenizer", "model"):
        target = DEMO_DIR / role
        for file in ("config.json", "model.safetensors"):
            shutil.copyfile(trained / role / file, target / file)
            (target / file).chmod(0o644)
    model_lineage = Lineage.from_mapping(result.lineage.to_dict()).to_dict()
    model_lineage["data"]["path"] = DATA_NAME        # not this machine's scratch folder
    model_lineage["tokenizer"] = "kronos-demo-tokenizer"
    scratch = yaml.safe_load(Path(result.registry).read_text(encoding="utf-8"))
    tok_lineage = scratch["tokenizers"][result.tokenizer].get("lineage")
    if tok_lineage:
        tok_lineage["data"]["path"] = DATA_NAME
    model_card = card(report, seconds)
    text = replace_block(registry_text, "kronos-demo-tokenizer", entry_block(
        "kronos-demo-tokenizer", tok_lineage or {}, ["Tokenizer of kronos-demo, trained with it."],
        ["source: package://data/demo/tokenizer", f"params: {scratch_params(scratch, 'tokenizers', result.tokenizer)}",
         *config_lines(trained / "tokenizer")]))
    return replace_block(text, "kronos-demo", entry_block(
        "kronos-demo", model_lineage, model_card,
        ["source: package://data/demo/model", "tokenizer: kronos-demo-tokenizer", "context_length: 512",
         f"params: {scratch_params(scratch, 'models', result.name)}", "available: true",
         *config_lines(trained / "model")]))


def scratch_params(scratch: dict, section: str, name: str) -> int:
    return int(scratch[section][name]["params"])


def config_lines(folder: Path) -> list[str]:
    import json

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return ["config:"] + [f"  {key}: {json.dumps(value)}" for key, value in config.items()]


def write_excerpt(frame) -> None:
    spx = frame[frame["symbol"] == "SPX"].drop(columns="symbol").tail(EXCERPT_BARS)
    write_table(spx, EXCERPT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="train and evaluate, write nothing in the package")
    parser.add_argument("--work", type=Path, help="keep the scratch folder here (default: a temporary one)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # one thread: the same float sums on every run of this machine
    frame = read_indices(fetch_wheel(CACHE))
    with tempfile.TemporaryDirectory(prefix="kronos-demo-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = write_table(frame, work / DATA_NAME)
        registry, store = scratch_registry(work), work / "store"
        started = time.perf_counter()
        result = train(registry, store, data)
        seconds = time.perf_counter() - started
        report = evaluate(registry, store, data)
        lines = card(report, seconds)
        print("\n".join(lines))
        if args.dry_run:
            return 0
        REGISTRY.write_text(write_package(result, report, seconds, REGISTRY.read_text(encoding="utf-8")),
                            encoding="utf-8")
        write_excerpt(frame)
    print(f"wrote {DEMO_DIR}, {EXCERPT.relative_to(ROOT)} and the demo entries of {REGISTRY.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
