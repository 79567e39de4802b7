"""The settings of one fine-tuning run, parsed and checked once for every face.

:class:`FinetuneSettings` holds what the CLI's options and ``kronos_registry.finetune``'s
keywords say; :meth:`FinetuneSettings.check` refuses impossible values with an
``InputDataError`` naming the option and a fix, before anything is read or written.
Defaults suit small data: the maintainers advise a predictor learning rate around 1e-5
when fine-tuning on little data; the other numbers are those of the official training
scripts (AdamW betas (0.9, 0.95), weight decay 0.1, 3% warm-up, gradient-norm clip 2.0
for the tokenizer and 3.0 for the predictor). Only attrs here: cheap to import.
"""

from __future__ import annotations

import attrs
from attrs import frozen

from registry.errors import InputDataError

TOKENIZER_CHOICES = ("train", "keep")
DEFAULT_PREDICTOR_LR = 1e-5
DEFAULT_TOKENIZER_LR = 2e-4


@frozen
class OptimiserSettings:
    """One stage's optimiser and schedule: AdamW, linear warm-up, cosine decay, clipping."""

    lr: float
    clip_norm: float
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_fraction: float = 0.03
    # The schedule starts at lr / start_div and ends at lr / end_div (as the official OneCycle).
    start_div: float = 10.0
    end_div: float = 1e4


@frozen
class FinetuneSettings:
    """Everything that decides the weights a run produces (and so its lineage)."""

    epochs: int = 10
    tokenizer_epochs: int | None = None   # the tokenizer stage's epochs when it differs (None: `epochs`)
    max_steps: int | None = None          # stop after this many optimiser steps per stage
    batch_size: int = 32                  # the global batch: split over the ranks under torchrun
    lr: float = DEFAULT_PREDICTOR_LR      # the predictor's peak learning rate
    tokenizer_lr: float = DEFAULT_TOKENIZER_LR
    lookback: int = 90                    # history bars of a window (its normalisation statistics)
    horizon: int = 10                     # bars after the history; a window is lookback + horizon + 1
    val_fraction: float = 0.2             # the last part of each series before the test tail
    test_fraction: float = 0.0            # a held-out tail per series, never trained or validated on
    stride: int = 1                       # bars between the starts of consecutive windows
    seed: int = 0
    patience: int = 3                     # epochs without a better validation loss before stopping
    checkpoint_every: int = 50            # optimiser steps between resumable checkpoints (and each epoch end)
    tokenizer: str | None = None          # "train" | "keep" | None: keep when the base's is shared
    precision: str = "auto"               # "auto" (bf16 autocast on a GPU) | "fp32" | "bf16"
    weight_decay: float = 0.1

    @property
    def window(self) -> int:
        return self.lookback + self.horizon + 1

    def tokenizer_stage(self) -> FinetuneSettings:
        """The settings the tokenizer stage runs with: its own epoch count when one is given."""
        return self if self.tokenizer_epochs is None else attrs.evolve(self, epochs=self.tokenizer_epochs)

    def predictor_optimiser(self) -> OptimiserSettings:
        return OptimiserSettings(lr=self.lr, clip_norm=3.0, weight_decay=self.weight_decay)

    def tokenizer_optimiser(self) -> OptimiserSettings:
        return OptimiserSettings(lr=self.tokenizer_lr, clip_norm=2.0, weight_decay=self.weight_decay)

    def check(self, context: int | None = None) -> FinetuneSettings:
        """Refuse impossible values (``context``: the base's, which a window's input must fit)."""
        _at_least("--epochs", self.epochs, 1)
        if self.tokenizer_epochs is not None:
            _at_least("--tokenizer-epochs", self.tokenizer_epochs, 1)
        if self.max_steps is not None:
            _at_least("--max-steps", self.max_steps, 1)
        _at_least("--batch-size", self.batch_size, 1)
        _at_least("--lookback", self.lookback, 1)
        _at_least("--horizon", self.horizon, 0)
        _at_least("--stride", self.stride, 1)
        _at_least("--patience", self.patience, 1)
        _at_least("--checkpoint-every", self.checkpoint_every, 1)
        for option, value in (("--lr", self.lr), ("--tokenizer-lr", self.tokenizer_lr)):
            if not value > 0 or value >= 1:
                raise _bad(option, value, "a learning rate in (0, 1), e.g. 1e-5 for the predictor")
        for option, value in (("--val-fraction", self.val_fraction), ("--test-fraction", self.test_fraction)):
            if not 0 <= value < 1:
                raise _bad(option, value, "a fraction of each series in [0, 1), e.g. 0.2")
        if not self.val_fraction > 0:
            raise _bad("--val-fraction", self.val_fraction, "a fraction above 0: early stopping and the best "
                       "checkpoint need validation windows")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise _bad("--val-fraction", self.val_fraction, "fractions that leave at least 10% of each series "
                       f"to train on (with --test-fraction {self.test_fraction})")
        if self.tokenizer is not None and self.tokenizer not in TOKENIZER_CHOICES:
            raise _bad("--tokenizer", self.tokenizer, "train or keep")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise _bad("--precision", self.precision, "auto, fp32 or bf16")
        if context is not None and self.lookback + self.horizon > context:
            raise InputDataError(
                f"--lookback {self.lookback} + --horizon {self.horizon} = {self.lookback + self.horizon} bars "
                f"exceed the base model's context of {context}", field="--lookback",
                hint=f"choose a lookback and horizon that add up to at most {context}")
        return self

    def hyperparameters(self) -> dict:
        """What the lineage records (plain values, YAML-safe)."""
        data = attrs.asdict(self)
        data["betas"] = list(self.predictor_optimiser().betas)
        data["warmup_fraction"] = self.predictor_optimiser().warmup_fraction
        return data


def _at_least(option: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _bad(option, value, f"a whole number of at least {low}")


def _bad(option: str, value, want: str) -> InputDataError:
    return InputDataError(f"{option} {value!r} is out of range", field=option, hint=f"give {want}")


__all__ = ["DEFAULT_PREDICTOR_LR", "DEFAULT_TOKENIZER_LR", "FinetuneSettings", "OptimiserSettings",
           "TOKENIZER_CHOICES"]
