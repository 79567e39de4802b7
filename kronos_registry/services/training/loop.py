"""The training loop of one stage (the tokenizer, or the predictor), top to bottom.

    for each epoch:
        order the training windows by a permutation drawn from (seed, epoch)
        for each global batch of that order (this rank's share of it):
            loss -> backward -> clip the gradient norm -> AdamW step at the scheduled rate
            every `checkpoint_every` steps: save the resumable state
        validation loss over every validation window (all ranks together)
        better than the best so far: save these weights as the best checkpoint
        log the epoch (CSV beside the checkpoint), save the resumable state
        stop after `patience` epochs without improvement, or at `max_steps`

The optimiser and the learning-rate schedule (warm-up, then cosine decay) are in optim.py.
A stage differs only in its
module, its two loss functions and its optimiser settings (:class:`Stage`); what happens
around the stages (which run, where the weights go) is ``finetune.py``'s business.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from attrs import frozen

from kronos_registry.services.training import ddp
from kronos_registry.services.training.data import Windows
from kronos_registry.services.training.optim import AdamW, warmup_cosine
from kronos_registry.services.training.settings import FinetuneSettings, OptimiserSettings
from kronos_registry.services.training.state import load_state, restore_rng, rng_state, save_state, state_path

LOG_COLUMNS = ("epoch", "steps", "train_loss", "val_loss", "best_val_loss", "lr", "seconds")

LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@frozen(eq=False)
class Stage:
    name: str                    # "tokenizer" | "predictor": names its state and log files
    module: torch.nn.Module      # what is trained (on the run's device)
    train_loss: LossFn           # (module, x, stamps) -> mean loss of the batch, to minimise
    val_loss: LossFn             # (module, x, stamps) -> mean validation loss of the batch
    optimiser: OptimiserSettings


@frozen
class StageResult:
    best_val_loss: float
    best_epoch: int
    epochs: int
    steps: int
    stopped: str                 # why it ended: "epochs", "max_steps", "early_stopping"
    log_path: str


def train_stage(stage: Stage, train: Windows, val: Windows, settings: FinetuneSettings, world: ddp.World,
                workdir: Path, *, log_dir: Path, save_best: Callable[[torch.nn.Module], None],
                resume: bool = False, progress: bool = False) -> StageResult:
    """Train ``stage.module`` in place (see the module doc); its best weights go to ``save_best``
    (called on rank 0 only), its resumable state into ``workdir``, its log into ``log_dir``."""
    torch.manual_seed(settings.seed + world.rank)     # dropout differs per rank, as in any DDP job
    module = stage.module
    model = ddp.wrap(module, world)
    params = [p for p in module.parameters() if p.requires_grad]
    optimiser = AdamW(params, betas=stage.optimiser.betas, weight_decay=stage.optimiser.weight_decay)
    batch = min(settings.batch_size, len(train))
    if batch < world.size:
        raise ValueError(f"a global batch of {batch} windows cannot be split over {world.size} processes")
    per_epoch = batches_per_epoch(len(train), batch, world.size)
    total = per_epoch * settings.epochs if settings.max_steps is None else min(per_epoch * settings.epochs,
                                                                                settings.max_steps)
    lr_at = warmup_cosine(total, stage.optimiser)

    path = state_path(workdir, stage.name)
    run = fresh_run()
    saved = load_state(path) if resume else None
    if saved is not None:
        run = resume_from(saved, module, optimiser, world)
    log_path = Path(log_dir) / f"{stage.name}-log.csv"
    bar = _progress(stage.name, total, run["step"], progress and world.is_main)

    def checkpoint():
        rngs = ddp.gather(world, rng_state(world.device))
        if world.is_main:
            save_state(path, {**run, "module": module.state_dict(), "optimiser": optimiser.state_dict(),
                              "rng": rngs, "world_size": world.size})

    while run["epoch"] < settings.epochs and not run["stopped"]:
        epoch, started = run["epoch"], time.monotonic()
        order = epoch_order(len(train), settings.seed, epoch)
        model.train()
        for i in range(run["batch"], per_epoch):
            if run["step"] >= total:
                break
            chosen = order[i * batch:(i + 1) * batch]
            mine = ddp.shard(chosen, world)
            x, stamps = train.batch(mine, world.device)
            with _autocast(settings, world):
                # the ranks' mean gradients, averaged by DDP, equal the whole batch's mean gradient
                loss = stage.train_loss(model, x, stamps) * (len(mine) * world.size / len(chosen))
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, stage.optimiser.clip_norm)
            optimiser.step(lr_at(run["step"]))
            run["step"] += 1
            run["batch"] = i + 1
            run["loss_sum"] += float(loss.detach()) * len(chosen) / (len(mine) * world.size)
            run["loss_batches"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{run['loss_sum'] / run['loss_batches']:.4f}", val=_fmt(run["last_val"]))
            if run["step"] % settings.checkpoint_every == 0 and run["batch"] < per_epoch:
                checkpoint()

        val_loss = evaluate(stage, val, batch, world)
        improved = val_loss < run["best"]
        if improved:
            run["best"], run["best_epoch"], run["bad_epochs"] = val_loss, epoch + 1, 0
            if world.is_main:
                save_best(module)
        else:
            run["bad_epochs"] += 1
        train_loss = ddp.all_sum(world, [run["loss_sum"]])[0] / max(1, run["loss_batches"]) / world.size
        run["history"].append({"epoch": epoch + 1, "steps": run["step"], "train_loss": train_loss,
                               "val_loss": val_loss, "best_val_loss": run["best"],
                               "lr": lr_at(max(0, run["step"] - 1)), "seconds": time.monotonic() - started})
        run.update(epoch=epoch + 1, batch=0, loss_sum=0.0, loss_batches=0, last_val=val_loss)
        if world.is_main:
            write_log(log_path, run["history"])
        bar.set_postfix(loss=_fmt(train_loss), val=_fmt(val_loss))
        if run["bad_epochs"] >= settings.patience:
            run["stopped"] = "early_stopping"
        elif run["step"] >= total and run["epoch"] < settings.epochs:
            run["stopped"] = "max_steps"
        checkpoint()
    bar.close()
    return StageResult(run["best"], run["best_epoch"], run["epoch"], run["step"], run["stopped"] or "epochs",
                       str(log_path))


# --------------------------------------------------------------------------- the pieces


def batches_per_epoch(windows: int, batch: int, ranks: int) -> int:
    """Whole batches, plus the last partial one when every rank gets at least one window of it."""
    full, rest = divmod(windows, batch)
    return full + (1 if rest >= ranks else 0)


def epoch_order(windows: int, seed: int, epoch: int) -> np.ndarray:
    """The epoch's permutation of the training windows, from (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(windows)


@torch.no_grad()
def evaluate(stage: Stage, val: Windows, batch: int, world: ddp.World) -> float:
    """The mean validation loss over every validation window (each rank scores its share)."""
    stage.module.eval()
    mine = ddp.shard(np.arange(len(val)), world)
    total = 0.0
    for start in range(0, len(mine), batch):
        chosen = mine[start:start + batch]
        x, stamps = val.batch(chosen, world.device)
        total += float(stage.val_loss(stage.module, x, stamps)) * len(chosen)
    summed, count = ddp.all_sum(world, [total, len(mine)])
    return summed / count


def fresh_run() -> dict:
    return {"epoch": 0, "batch": 0, "step": 0, "best": math.inf, "best_epoch": 0, "bad_epochs": 0,
            "loss_sum": 0.0, "loss_batches": 0, "last_val": None, "history": [], "stopped": None}


def resume_from(saved: dict, module, optimiser: AdamW, world: ddp.World) -> dict:
    """Put the saved weights, moments and random state back; -> the run's counters."""
    module.load_state_dict(saved["module"])
    optimiser.load_state_dict(saved["optimiser"])
    if saved.get("world_size") == world.size:
        restore_rng(saved["rng"][world.rank], world.device)
    keys = fresh_run().keys()
    return {key: saved[key] for key in keys}


def write_log(path: Path, rows: list[dict]) -> None:
    """The per-epoch log, rewritten whole (a kill leaves the previous one)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(out.getvalue())
    os.replace(temp, path)


def _autocast(settings: FinetuneSettings, world: ddp.World):
    """bf16 autocast on a GPU (precision "auto" or "bf16"); a no-op context elsewhere."""
    on_gpu = world.device.startswith("cuda")
    wanted = settings.precision == "bf16" or (settings.precision == "auto" and on_gpu)
    enabled = on_gpu and wanted and torch.cuda.is_bf16_supported()
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=True) if enabled else _Nothing()


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress(name: str, total: int, done: int, shown: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc=f"training {name}", unit="step", file=sys.stderr,
                disable=not shown, dynamic_ncols=True, leave=True)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


__all__ = ["LOG_COLUMNS", "Stage", "StageResult", "batches_per_epoch", "epoch_order", "evaluate", "train_stage"]
