"""`kronos-registry finetune NEW --from BASE -i DATA`: fine-tune, register, record the lineage.

A thin face over ``services/training`` (``finetune``): parse the options, run it, print
where the checkpoints went, the entry written and its lineage. Also the command torchrun
starts on every rank (`torchrun --nproc-per-node N -m kronos_registry finetune ...`); only
rank 0 prints.
"""

from __future__ import annotations

import os

import click

from kronos_registry.cli.app import PROG, App, cli, pass_app
from kronos_registry.cli.output import emit_json
from kronos_registry.services.training.settings import (
    DEFAULT_PREDICTOR_LR,
    DEFAULT_TOKENIZER_LR,
    TOKENIZER_CHOICES,
    FinetuneSettings,
)

D = FinetuneSettings()


@cli.command("finetune")
@click.argument("new")
@click.option("--from", "base", required=True, metavar="BASE", help="The model entry to start from.")
@click.option("-i", "--input", "data", required=True, metavar="DATA",
              help="Candles: a CSV or Parquet file of one series, or a long table with --by.")
@click.option("--by", metavar="COLUMN", help="DATA is a long table; COLUMN names each row's series.")
@click.option("--tokenizer", type=click.Choice(TOKENIZER_CHOICES),
              help="Train the tokenizer too, or keep the base's [default: keep when other models share it].")
@click.option("--epochs", type=click.IntRange(min=1), default=D.epochs, show_default=True)
@click.option("--tokenizer-epochs", type=click.IntRange(min=1), metavar="N",
              help="Epochs of the tokenizer stage, when it needs more than the predictor [default: --epochs].")
@click.option("--max-steps", type=click.IntRange(min=1), metavar="N", help="Stop each stage after N steps.")
@click.option("--batch-size", type=click.IntRange(min=1), default=D.batch_size, show_default=True,
              help="Windows per optimiser step (the global batch under torchrun).")
@click.option("--lr", type=float, default=DEFAULT_PREDICTOR_LR, show_default=True,
              help="The predictor's peak learning rate (the maintainers advise ~1e-5 on small data).")
@click.option("--tokenizer-lr", type=float, default=DEFAULT_TOKENIZER_LR, show_default=True)
@click.option("--lookback", type=click.IntRange(min=1), default=D.lookback, show_default=True,
              help="History bars of a window: its normalisation statistics come from these only.")
@click.option("--horizon", type=click.IntRange(min=0), default=D.horizon, show_default=True,
              help="Bars after the history in a window (lookback + horizon must fit the context).")
@click.option("--val-fraction", type=float, default=D.val_fraction, show_default=True,
              help="The last part of each series (before the test tail) used for validation.")
@click.option("--test-fraction", type=float, default=D.test_fraction, show_default=True,
              help="A held-out tail of each series, never trained on (for evaluation).")
@click.option("--stride", type=click.IntRange(min=1), default=D.stride, show_default=True,
              help="Bars between consecutive windows' starts.")
@click.option("--seed", type=int, default=D.seed, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=D.patience, show_default=True,
              help="Stop a stage after this many epochs without a better validation loss.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=D.checkpoint_every, show_default=True,
              help="Optimiser steps between resumable checkpoints (and at every epoch's end).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 autocast on a GPU, fp32 on the CPU.")
@click.option("--device", metavar="D", help="cpu, cuda, cuda:1, mps [default: the best available].")
@click.option("--output", metavar="DIR", help="Checkpoint folder [default: checkpoints/NEW beside the registry file].")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_app
def finetune(app: App, new: str, base: str, data: str, by: str | None, tokenizer: str | None, epochs: int,
             tokenizer_epochs: int | None, max_steps: int | None, batch_size: int, lr: float, tokenizer_lr: float,
             lookback: int, horizon: int,
             val_fraction: float, test_fraction: float, stride: int, seed: int, patience: int,
             checkpoint_every: int, precision: str, device: str | None, output: str | None, resume: bool,
             as_json: bool):
    """Fine-tune BASE on your candles and register the result as NEW, with its lineage.

    Windows of lookback + horizon + 1 bars are cut from each series and normalised with
    their history part only (as a forecast is); each series is split in time into
    train / validation [/ test tail]. The tokenizer is trained first when chosen, then
    the predictor; the best validation checkpoint of each is kept, in hub layout, under
    checkpoints/NEW (beside the registry file), with a per-epoch log. The new entry is
    appended to the registry file only when training has succeeded and the checkpoint
    verifies: an interrupted run changes neither the file nor the store, and --resume
    continues it. Under torchrun every process runs this command; rank 0 writes.

    \b
    Example:
      kronos-registry finetune my-btc --from kronos-small -i btc_1h.csv --epochs 5
      kronos-registry show my-btc
      kronos-registry predict my-btc -i btc_1h.csv -n 24
      torchrun --nproc-per-node 4 -m kronos_registry finetune my-universe --from kronos-small \\
          -i universe.parquet --by symbol
    """
    from kronos_registry.services.training.finetune import finetune as run

    result = run(new, base, data, by=by, tokenizer=tokenizer, epochs=epochs, tokenizer_epochs=tokenizer_epochs,
                 max_steps=max_steps,
                 batch_size=batch_size, lr=lr, tokenizer_lr=tokenizer_lr, lookback=lookback, horizon=horizon,
                 val_fraction=val_fraction, test_fraction=test_fraction, stride=stride, seed=seed,
                 patience=patience, checkpoint_every=checkpoint_every, precision=precision, device=device,
                 resume=resume, output=output, registry=app.registry_file, store=app.store, offline=app.offline,
                 progress=app.progress, on_note=app.note)
    if os.environ.get("RANK", "0") != "0":
        return
    if as_json:
        emit_json(result.to_json())
        return
    for name, stage in result.stages.items():
        click.echo(f"trained  {name}: best validation loss {stage.best_val_loss:.4f} at epoch {stage.best_epoch} "
                   f"({stage.epochs} epochs, {stage.steps} steps, stopped: {stage.stopped}); log {stage.log_path}")
    click.echo(f"added    {result.name} to {result.registry}:{result.line} (tokenizer {result.tokenizer}); "
               f"checkpoints in {result.folder}")
    click.echo(f"lineage  {result.lineage.summary()}")
    where = f" --registry {result.registry}" if app.registry_file else ""
    app.note(f"next: {PROG}{where} show {result.name}; {PROG}{where} predict {result.name} --input candles.csv "
             "--pred-len 24")
