"""What one forecast request may ask: the parameters' ranges, and a long-running face's limits.

:data:`BOUNDS` is each forecast parameter's range, declared once for every face. ``Limits``
is what a request may ask of `serve` and `mcp`: the service enforces them and `serve`'s
options set them (their defaults shown in `serve --help` are these). Only attrs here, so
registering the commands stays light.
"""

from __future__ import annotations

import attrs

from kronos_registry.services.cost import DEFAULT_MAX_COST

MIB = 1024 * 1024


@attrs.frozen
class Limits:
    """What one request may ask (each documented in `serve --help`)."""

    max_pred_len: int = 1024
    max_samples: int = 64
    max_rows: int = 100_000            # candles in one request
    max_body_bytes: int = 16 * MIB
    max_queue: int = 64                # series waiting for a batch, all models together
    max_cost: int | None = DEFAULT_MAX_COST  # rows x bars x samples x (1 + quantiles), see services/cost.py
    max_parsing: int = 2               # bodies read and parsed at once: memory is per body, and the GIL
                                       # serialises parsing anyway, so more would buy no speed
    body_timeout_s: float = 30.0       # a body not received within this is refused (408)



@attrs.frozen
class Bound:
    """The range of one forecast parameter: a lower bound and an optional upper one.

    Declared once in :data:`BOUNDS`: ``ForecastParams.check`` (``services/forecast.py``) tests
    it, and the machine faces' schemas (``services/wire.py``) and the CLI's option types
    (``cli/params.py``) are built from it.
    """

    low: float
    low_open: bool = False            # True: the bound itself is out (top_p > 0)
    high: float | None = None
    high_open: bool = False

    def holds(self, value) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        if self.high is None:
            return above
        return above and (value < self.high if self.high_open else value <= self.high)

    def pydantic(self) -> dict:
        """As pydantic ``Field`` keyword arguments (ge/gt, le/lt)."""
        limits = {"gt" if self.low_open else "ge": self.low}
        if self.high is not None:
            limits["lt" if self.high_open else "le"] = self.high
        return limits


MIN_TEMPERATURE = 1e-3

BOUNDS = {
    "pred_len": Bound(1),
    "samples": Bound(1),
    "seed": Bound(0),
    # Logits are divided by it: below ~1e-3 they overflow half precision (below ~1e-38, float32)
    # and sampling fails on NaN; 1e-3 already samples as greedily as any smaller value.
    "temperature": Bound(MIN_TEMPERATURE),
    "top_p": Bound(0, low_open=True, high=1),
    "top_k": Bound(0),
    "lookback": Bound(1),
    "quantile": Bound(0, low_open=True, high=1, high_open=True),
}


# Quantiles one request may ask for: each is a full forecast-shaped frame in the response, so
# an unbounded list makes a small request cost a huge body (issue 23: 20,000 gave 131 MB).
# 99 covers every percentile.
MAX_QUANTILES = 99

# torch's generators take seeds below 2**63: a representation limit, not part of the range.
SEED_LIMIT = 2**63


__all__ = ["BOUNDS", "Bound", "Limits", "MAX_QUANTILES", "MIB", "MIN_TEMPERATURE", "SEED_LIMIT"]
