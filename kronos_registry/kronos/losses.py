"""The training objectives of Kronos' two stages, as public functions.

Both equal the definitions the published checkpoints were trained with (a test compares
them with the official implementation on the same weights and batch):

    tokenizer   loss = (mse(x_from_s1, x) + mse(x_from_s1_s2, x) + bsq_loss) / 2
                validation loss = mse(x_from_s1_s2, x)    (the reconstruction forecasts use)

    predictor   tokens s1, s2 of a window of T + 1 bars (from the frozen tokenizer);
                inputs are positions 0..T-1, targets positions 1..T;
                loss = (CE(s1 logits, s1 targets) + CE(s2 logits, s2 targets)) / 2
                with the s2 head conditioned on the TRUE next s1 (teacher forcing), so the
                loss is deterministic; the official script samples that s1 instead.

The dependency-aware layer attends causally only in training mode (its cross-attention
uses ``is_causal=self.training``); in eval mode, with a full-length query, position t
would see the context of later bars. :func:`predictor_loss` therefore always runs that
layer causally, so a validation loss (eval mode, no dropout) scores what training scores.
That layer has no dropout, so switching its mode changes nothing else.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.nn.functional as F


class TokenizerLoss(NamedTuple):
    loss: torch.Tensor          # what the tokenizer stage minimises
    full: torch.Tensor          # mse of the reconstruction from s1 and s2: the validation loss
    coarse: torch.Tensor        # mse of the reconstruction from s1 alone
    quantizer: torch.Tensor     # the BSQ commitment + entropy terms


class PredictorLoss(NamedTuple):
    loss: torch.Tensor          # mean of the two cross-entropies: minimised and validated
    s1: torch.Tensor
    s2: torch.Tensor


def tokenizer_loss(tokenizer, x: torch.Tensor) -> TokenizerLoss:
    """Normalised candles (B, T, 6) -> the tokenizer's losses (see the module doc)."""
    (coarse, full), quantizer, _, _ = tokenizer(x)
    coarse_mse = F.mse_loss(coarse, x)
    full_mse = F.mse_loss(full, x)
    return TokenizerLoss((coarse_mse + full_mse + quantizer) / 2, full_mse, coarse_mse, quantizer)


@torch.no_grad()
def encode_tokens(tokenizer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised candles (B, T, 6) -> (s1, s2) token ids (B, T), with no gradient."""
    s1, s2 = tokenizer.encode(x, half=True)
    return s1, s2


def predictor_loss(model, s1: torch.Tensor, s2: torch.Tensor, stamp: torch.Tensor) -> PredictorLoss:
    """Tokens (B, T + 1) and time features (B, T + 1, 5) of whole windows -> the predictor's
    next-token losses, teacher-forced (see the module doc)."""
    s1_in, s2_in, stamp_in = s1[:, :-1], s2[:, :-1], stamp[:, :-1]
    s1_next, s2_next = s1[:, 1:], s2[:, 1:]
    with causal_dependency_layer(model):
        s1_logits, s2_logits = model(s1_in, s2_in, stamp_in, use_teacher_forcing=True, s1_targets=s1_next)
    loss, ce1, ce2 = _unwrap(model).head.compute_loss(s1_logits, s2_logits, s1_next, s2_next)
    return PredictorLoss(loss, ce1, ce2)


@contextlib.contextmanager
def causal_dependency_layer(model):
    """Within it the dependency-aware layer attends causally, whatever the model's mode."""
    layer = _unwrap(model).dep_layer
    was = layer.training
    layer.train(True)
    try:
        yield
    finally:
        layer.train(was)


def _unwrap(model):
    """The Kronos module inside a DistributedDataParallel (or compiled) wrapper."""
    return getattr(model, "module", model)


__all__ = ["PredictorLoss", "TokenizerLoss", "causal_dependency_layer", "encode_tokens", "predictor_loss",
           "tokenizer_loss"]
