"""AdamW and the learning-rate schedule, in a few lines each.

:class:`AdamW` makes torch.optim.AdamW's update (decoupled weight decay, bias-corrected
moments; a test compares the two step by step). It is written out because the first use of
``torch.optim`` imports ``torch._dynamo``, seconds per process on a small machine: longer
than a small fine-tune's steps, and paid again by every rank torchrun starts.

    p <- p * (1 - lr * weight_decay)
    m <- beta1 * m + (1 - beta1) * g            v <- beta2 * v + (1 - beta2) * g^2
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps)

:func:`warmup_cosine` is the schedule: from lr/10 linearly up to lr over the first 3% of
the steps, then a cosine down to lr/1e4 (the official scripts' OneCycle shape). The rate of
a step follows from the step's number alone, so a resumed run needs no schedule state.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch

from kronos_registry.services.training.settings import OptimiserSettings


class AdamW:
    def __init__(self, params: Iterable[torch.nn.Parameter], *, betas: tuple[float, float] = (0.9, 0.95),
                 weight_decay: float = 0.1, eps: float = 1e-8):
        self.params = list(params)
        self.beta1, self.beta2 = betas
        self.weight_decay, self.eps = weight_decay, eps
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, lr: float) -> None:
        self.steps += 1
        step_size = lr / (1 - self.beta1 ** self.steps)
        bias2_sqrt = math.sqrt(1 - self.beta2 ** self.steps)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            g = p.grad
            p.mul_(1 - lr * self.weight_decay)
            m.lerp_(g, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            p.addcdiv_(m, (v.sqrt() / bias2_sqrt).add_(self.eps), value=-step_size)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        return {"steps": self.steps, "exp_avg": list(self.exp_avg), "exp_avg_sq": list(self.exp_avg_sq)}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        for mine, saved in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"]):
            mine.copy_(saved)


def warmup_cosine(total: int, opt: OptimiserSettings) -> Callable[[int], float]:
    """The learning rate of step ``step`` (0-based) of ``total``."""
    warm = max(1, round(total * opt.warmup_fraction))
    low, end = opt.lr / opt.start_div, opt.lr / opt.end_div

    def rate(step: int) -> float:
        if step < warm:
            return low + (opt.lr - low) * step / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return end + (opt.lr - end) * 0.5 * (1 + math.cos(math.pi * progress))

    return rate


__all__ = ["AdamW", "warmup_cosine"]
