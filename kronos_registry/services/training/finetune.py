"""`finetune`: a base entry and candles in, a new registered entry with its lineage out.

    base entry --sync--> its tokenizer and model, from the store
    candles --read, validate, fingerprint--> series --time split--> windows (data.py)
    stage 1 (optional): train the tokenizer   (loop.py, kronos/losses.py tokenizer_loss)
    stage 2: train the predictor on the (now frozen) tokenizer's tokens (predictor_loss)
    best checkpoints, hub layout --> <folder>/model [and <folder>/tokenizer]
    entries + lineage --> the registry file (the commit point), then synced (register.py)

The folder defaults to ``checkpoints/NEW`` beside the registry file. It also holds each
stage's per-epoch log (``predictor-log.csv``, ``tokenizer-log.csv``) and, while the run is
unfinished, ``resume/`` (the settings and each stage's resumable state), which
``resume=True`` continues from; a finished run removes ``resume/``.

The tokenizer is trained (``tokenizer="train"``) or kept (``"keep"``); by default it is kept
when the base's tokenizer is shared by other models (retraining it would make a tokenizer
the others do not pair with), else trained. A trained one becomes the entry
``NEW-tokenizer``. Under torchrun every rank runs this; only rank 0 writes (see ddp.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from attrs import evolve, frozen

from kronos_registry import __version__
from kronos_registry.services.lineage import Lineage, file_sha256
from kronos_registry.services.registry_file import RefusedError, check_new_name, registry_target
from kronos_registry.services.training import ddp
from kronos_registry.services.training.data import (
    TrainingData,
    Windows,
    load_training_data,
    require_windows,
    split_by_time,
    split_spans,
)
from kronos_registry.services.training.register import NewEntry, register
from kronos_registry.services.training.settings import FinetuneSettings
from registry.errors import ReadOnlyStoreError, VerificationError

RESUME_DIR = "resume"
RUN_FILE = "run.json"


@frozen(eq=False)
class FinetuneResult:
    name: str
    tokenizer: str
    registry: str                 # the registry file the entries were written to
    folder: str                   # the checkpoints (model/, tokenizer/, logs)
    lineage: Lineage
    stages: dict                  # stage name -> loop.StageResult
    synced: object = None         # the sync result (rank 0), None on the other ranks
    line: int = 0                 # where the model's entry starts in the registry file

    def to_json(self) -> dict:
        return {"name": self.name, "tokenizer": self.tokenizer, "registry": self.registry, "folder": self.folder,
                "line": self.line, "lineage": self.lineage.to_dict(),
                "stages": {name: {"best_val_loss": r.best_val_loss, "best_epoch": r.best_epoch, "epochs": r.epochs,
                                  "steps": r.steps, "stopped": r.stopped, "log": r.log_path}
                           for name, r in self.stages.items()},
                "artifact_id": getattr(self.synced, "artifact_id", None)}


def finetune(new: str, base: str, data, *, by: str | None = None, tokenizer: str | None = None,
             epochs: int = 10, tokenizer_epochs: int | None = None, max_steps: int | None = None,
             batch_size: int = 32, lr: float | None = None,
             tokenizer_lr: float | None = None, lookback: int = 90, horizon: int = 10, val_fraction: float = 0.2,
             test_fraction: float = 0.0, stride: int = 1, seed: int = 0, patience: int = 3,
             checkpoint_every: int = 50, precision: str = "auto", device: str | None = None,
             resume: bool = False, output: str | os.PathLike | None = None,
             registry: str | os.PathLike | None = None, store: str | os.PathLike | None = None,
             offline: bool | None = None, progress: bool = False,
             on_note: Callable[[str], None] | None = None) -> FinetuneResult:
    """Fine-tune ``base`` on ``data`` (a candle file, a long table with ``by``, or a DataFrame)
    and register the result as ``new`` with its lineage (see the module doc)."""
    defaults = FinetuneSettings()
    settings = FinetuneSettings(
        epochs=epochs, tokenizer_epochs=tokenizer_epochs, max_steps=max_steps, batch_size=batch_size,
        lr=defaults.lr if lr is None else lr,
        tokenizer_lr=defaults.tokenizer_lr if tokenizer_lr is None else tokenizer_lr, lookback=lookback,
        horizon=horizon, val_fraction=val_fraction, test_fraction=test_fraction, stride=stride, seed=seed,
        patience=patience, checkpoint_every=checkpoint_every, tokenizer=tokenizer, precision=precision).check()
    world = ddp.join(device)
    try:
        return _run(new, base, data, by, settings, world, resume=resume, output=output, registry=registry,
                    store=store, offline=offline, progress=progress,
                    note=(on_note or _stderr) if world.is_main else (lambda _text: None))
    finally:
        ddp.leave(world)


def _run(new, base, data, by, settings: FinetuneSettings, world: ddp.World, *, resume, output, registry, store,
         offline, progress, note) -> FinetuneResult:
    from kronos_registry.services.registry import PACKAGED_REGISTRY, Registry

    # 1. What to make, and refusals before anything is read or written.
    target = registry_target(registry, "finetune")
    reg = Registry(target if target.exists() else PACKAGED_REGISTRY, store, offline=offline)
    base_entry = reg.model_entry(base)
    context = base_entry.context_length or 512
    settings = settings.check(context)
    mode = settings.tokenizer or default_tokenizer_mode(reg.spec, base_entry.tokenizer)
    settings = evolve(settings, tokenizer=mode)
    tokenizer_name = f"{new}-tokenizer" if mode == "train" else base_entry.tokenizer
    check_new_name(reg.spec, new, "finetune")
    if mode == "train":
        check_new_name(reg.spec, tokenizer_name, "finetune")
    check_pairing(base, base_entry.tokenizer, declared_config(reg.get(base_entry.tokenizer)),
                  declared_config(base_entry))
    require_writable_store(reg.store)
    folder = Path(output).absolute() if output else target.parent / "checkpoints" / new

    # 2. The data, split by time into windows.
    training = load_training_data(data, by)
    parts = split_by_time(training, val_fraction=settings.val_fraction, test_fraction=settings.test_fraction)
    cut = dict(lookback=settings.lookback, horizon=settings.horizon, stride=settings.stride)
    train, val = Windows(training, parts["train"], **cut), Windows(training, parts["validation"], **cut)
    require_windows(train, "training", training, parts["train"], option_hint=", or a smaller --val-fraction")
    require_windows(val, "validation", training, parts["validation"], option_hint=", or a larger --val-fraction")
    note(f"data: {training.fingerprint.series} series, {training.fingerprint.rows:,} bars; "
         f"{len(train):,} training and {len(val):,} validation windows of {train.length} bars")

    # 3. The base's weights (rank 0 syncs them once; the others read the store after it).
    _on_main(world, lambda: reg.sync(base))
    predictor = reg.load_predictor(base, device=world.device)
    tok, model = predictor.tokenizer, predictor.model
    check_pairing(base, base_entry.tokenizer, vars(tok), vars(model))
    base_artifact, tokenizer_artifact = reg.status(base), reg.status(base_entry.tokenizer)
    run_record = {"name": new, "base": base, "base_artifact": base_artifact, "data": training.fingerprint.sha256,
                  "by": by, "hyperparameters": _weights_settings(settings), "world_size": world.size}
    workdir = _on_main(world, lambda: prepare_folder(folder, run_record, resume=resume))
    workdir = Path(ddp.from_main(world, str(workdir)))

    # 4. The stages.
    import torch

    from kronos_registry.kronos.losses import encode_tokens, predictor_loss, tokenizer_loss
    from kronos_registry.services.training.loop import Stage, train_stage

    stages = {}
    if mode == "train":
        note(f"stage 1: training the tokenizer (from {base_entry.tokenizer}), lr {settings.tokenizer_lr:g}")
        stage = Stage("tokenizer", tok.train(),
                      train_loss=lambda m, x, s: tokenizer_loss(m, x).loss,
                      val_loss=lambda m, x, s: tokenizer_loss(m, x).full, optimiser=settings.tokenizer_optimiser())
        stages["tokenizer"] = train_stage(stage, train, val, settings.tokenizer_stage(), world, workdir, log_dir=folder,
                                          save_best=lambda m: save_checkpoint(m, folder / "tokenizer"),
                                          resume=resume, progress=progress)
        ddp.barrier(world)
        load_checkpoint(tok, folder / "tokenizer")
    tok.eval().requires_grad_(False)
    note(f"stage {2 if mode == 'train' else 1}: training the predictor (from {base}), lr {settings.lr:g}")

    def tokens_loss(m, x, s):
        with torch.autocast(x.device.type, enabled=False):    # tokens as inference makes them: fp32
            tokens = encode_tokens(tok, x)
        return predictor_loss(m, *tokens, s).loss

    stage = Stage("predictor", model.train(), train_loss=tokens_loss, val_loss=tokens_loss,
                  optimiser=settings.predictor_optimiser())
    stages["predictor"] = train_stage(stage, train, val, settings, world, workdir, log_dir=folder,
                                      save_best=lambda m: save_checkpoint(m, folder / "model"),
                                      resume=resume, progress=progress)
    ddp.barrier(world)

    # 5. Register (rank 0), with the lineage.
    lineage = make_lineage(base, base_artifact, tokenizer_name, mode == "train", training, parts, settings,
                           stages, folder, world)
    if not world.is_main:
        ddp.barrier(world)
        return FinetuneResult(new, tokenizer_name, str(target), str(folder), lineage, stages)
    try:
        tokenizer_entry = None
        if mode == "train":
            tokenizer_entry = NewEntry(tokenizer_name, folder / "tokenizer", tokenizer_lineage(
                lineage, base_entry.tokenizer, tokenizer_artifact, stages["tokenizer"]).to_dict(),
                f"Tokenizer of {new}. {describe(training, stages['tokenizer'])}")
        tokenizer_folder = folder / "tokenizer" if mode == "train" else reg.loader.locate(tokenizer_name).path
        synced, line = register(target, reg.spec, reg.store,
                                model=NewEntry(new, folder / "model", lineage.to_dict(),
                                               describe(training, stages["predictor"])),
                                tokenizer=tokenizer_entry, tokenizer_name=tokenizer_name,
                                tokenizer_folder=Path(tokenizer_folder), context_length=context, offline=offline)
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        ddp.barrier(world)
    return FinetuneResult(new, tokenizer_name, str(target), str(folder), lineage, stages, synced, line)


# --------------------------------------------------------------------------- decisions and refusals


def default_tokenizer_mode(spec, tokenizer: str) -> str:
    """keep a tokenizer other models pair with; train one the base has to itself."""
    users = [m.name for m in spec.models.values() if m.tokenizer == tokenizer]
    return "keep" if len(users) > 1 else "train"


def require_writable_store(store) -> None:
    """The new entry is synced into the store at the end: refuse now if it cannot be written."""
    root = Path(store.root)
    if store.is_read_only():
        raise ReadOnlyStoreError(str(root), str(root), "a read-only file system")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise ReadOnlyStoreError(str(root), str(exc.filename or root), exc.strerror or str(exc)) from None


def check_pairing(base: str, tokenizer_name: str, tokenizer_config: dict | None, model_config: dict | None) -> None:
    """The base's tokenizer must make the tokens its model reads (the same s1/s2 bits);
    checked on the declared configs before anything is synced, and on the loaded modules."""
    if not tokenizer_config or not model_config:
        return
    keys = ("s1_bits", "s2_bits")
    made, read = (tuple(tokenizer_config.get(k) for k in keys), tuple(model_config.get(k) for k in keys))
    if made != read:
        from registry.errors import Problem

        raise VerificationError(f"'{base}' with its tokenizer '{tokenizer_name}'", [Problem(
            f"the tokenizer makes tokens of s1/s2 bits {made}, the model reads {read}", field="tokenizer",
            hint=f"set the `tokenizer:` of '{base}' to a tokenizer with s1_bits/s2_bits {read}, or fine-tune "
                 "a base whose tokenizer matches")], hint="nothing was trained or written")


def declared_config(entry) -> dict | None:
    """The entry's config without a network call: pinned in the registry, else a local folder's."""
    from registry.spec import LocalSource

    if entry.config:
        return dict(entry.config)
    if isinstance(entry.source, LocalSource):
        try:
            return json.loads((Path(entry.source.path) / "config.json").read_text())
        except (OSError, ValueError):
            return None
    return None


def prepare_folder(folder: Path, record: dict, *, resume: bool) -> Path:
    """The run's working folder (``folder/resume``), new or, with ``resume``, the earlier run's."""
    workdir = folder / RESUME_DIR
    run_file = workdir / RUN_FILE
    if resume:
        if not run_file.is_file():
            raise RefusedError(f"there is no unfinished run of '{record['name']}' to resume in {folder}",
                               hint="run it without --resume")
        earlier = json.loads(run_file.read_text())
        changed = sorted(k for k in set(earlier) | set(record) if earlier.get(k) != record.get(k))
        changed += sorted(f"hyperparameters.{k}" for k in record["hyperparameters"]
                          if earlier.get("hyperparameters", {}).get(k) != record["hyperparameters"][k])
        if changed:
            raise RefusedError(f"the run in {folder} was started with other settings ({', '.join(changed)})",
                               hint="resume with the same base, data and options, or remove the folder and "
                                    "start again")
        return workdir
    if folder.exists() and any(folder.iterdir()):
        raise RefusedError(f"{folder} already holds files (an earlier run of '{record['name']}'?)",
                           hint="pass --resume to continue an interrupted run, remove the folder, or choose "
                                "another with --output")
    workdir.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return workdir


def _weights_settings(settings: FinetuneSettings) -> dict:
    """The settings that decide the weights (a resumed run must keep them)."""
    data = settings.hyperparameters()
    data.pop("checkpoint_every", None)
    return data


def _on_main(world: ddp.World, action: Callable):
    """Run ``action`` on rank 0 only; its error (or none) reaches every rank."""
    value, failure = None, None
    if world.is_main:
        try:
            value = action()
        except Exception as error:  # noqa: BLE001 - re-raised below, after the other ranks hear of it
            failure = error
    text = ddp.from_main(world, None if failure is None else str(failure))
    if failure is not None:
        raise failure
    if text is not None:
        raise RefusedError(f"rank 0 stopped: {text}")
    return value


# --------------------------------------------------------------------------- checkpoints and lineage


def save_checkpoint(module, folder: Path) -> None:
    """The module in hub layout, each file replaced atomically (config first: it never changes)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{folder.name}.", dir=folder.parent) as temp:
        module.save_pretrained(temp)
        for name in ("config.json", "model.safetensors"):
            os.replace(Path(temp) / name, folder / name)


def load_checkpoint(module, folder: Path) -> None:
    from safetensors.torch import load_file

    device = next(module.parameters()).device
    module.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)), strict=False)


def make_lineage(base, base_artifact, tokenizer_name, trained, training: TrainingData, parts, settings,
                 stages, folder: Path, world: ddp.World) -> Lineage:
    from datetime import datetime, timezone

    weights = {"model": file_sha256(folder / "model" / "model.safetensors")} if world.is_main else {}
    if trained and world.is_main:
        weights["tokenizer"] = file_sha256(folder / "tokenizer" / "model.safetensors")
    hyper = {**settings.hyperparameters(), "world_size": world.size,
             "run": {name: {"epochs": r.epochs, "steps": r.steps, "best_epoch": r.best_epoch, "stopped": r.stopped,
                            "best_validation_loss": r.best_val_loss} for name, r in stages.items()}}
    return Lineage(base=base, base_artifact=base_artifact or "", tokenizer=tokenizer_name, tokenizer_trained=trained,
                   data=training.fingerprint, splits=split_spans(training, parts), hyperparameters=hyper,
                   best_validation_loss=stages["predictor"].best_val_loss, weights_sha256=weights,
                   created=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
                   tool_version=__version__)


def tokenizer_lineage(lineage: Lineage, base_tokenizer: str, artifact: str | None, result) -> Lineage:
    """The trained tokenizer's own record: its base is the base's tokenizer."""
    return evolve(lineage, base=base_tokenizer, base_artifact=artifact or "", best_validation_loss=result.best_val_loss,
                  weights_sha256={"tokenizer": lineage.weights_sha256["tokenizer"]})


def describe(training: TrainingData, result) -> str:
    """The entry's description: what it was trained on, and how well it validated."""
    fp = training.fingerprint
    series = "1 series" if fp.series == 1 else f"{fp.series} series"
    return (f"Trained on {Path(fp.path).name} ({series}, {fp.rows:,} bars, {fp.first[:10]} .. {fp.last[:10]}); "
            f"best validation loss {result.best_val_loss:.4g}.")


def _stderr(text: str) -> None:
    import sys

    print(text, file=sys.stderr)


__all__ = ["FinetuneResult", "default_tokenizer_mode", "finetune"]
