"""What one forecast request costs the server, and the limit it is held to.

The cost is counted in "cells": rows the model reads x bars it generates x sampled paths x
(1 + quantiles). Decoding runs once per generated bar and sampled path, each step over the
rows in the model's window; every quantile then reads every sampled path of every bar, and
its numbers are rendered into the response. Rows beyond what the model reads cost only
parsing, which ``max_rows`` and ``max_body_bytes`` bound already. One function for every
face (HTTP, MCP), called by the forecast service before anything waits or loads.

Measured roughly (kronos-demo, one CPU thread): generating grows with bars x samples (8
samples: 48 bars 0.27 s, 400 bars 1.4 s); quantiles grow the rendering and the response
(8 samples x 24 bars: 3 quantiles 0.01 s and 10 KB, 3,000 quantiles 1.8 s and 8.7 MB); the
rows read cost little on a model this small but are the prefill and every step's attention
window on a larger one. The product over-counts where the terms overlap: a limit on it is
conservative, never blind to one of them.
"""

from __future__ import annotations

from registry.errors import InputDataError

# The largest request the default limits allow with the default three quantiles: a full
# 512-bar context, 1,024 bars, 64 samples. Anything the other limits admit at the defaults
# fits; 20,000 quantiles do not.
DEFAULT_MAX_COST = 512 * 1024 * 64 * (1 + 3)


def forecast_cost(*, rows: int, pred_len: int, samples: int, quantiles: int) -> int:
    """The cost in cells of forecasting ``pred_len`` bars from ``rows`` rows (see the module doc)."""
    return int(rows) * int(pred_len) * int(samples) * (1 + int(quantiles))


def check_cost(*, rows: int, pred_len: int, samples: int, quantiles: int, limit: int | None) -> int:
    """The request's cost; InputDataError (422) when it is over ``limit``, saying how to lower it."""
    cost = forecast_cost(rows=rows, pred_len=pred_len, samples=samples, quantiles=quantiles)
    if limit is not None and cost > limit:
        raise InputDataError(
            f"this forecast costs {cost:,} cells ({rows:,} rows read x {pred_len:,} bars x {samples:,} samples "
            f"x (1 + {quantiles:,} quantiles)), over this server's limit of {limit:,}",
            field="cost",
            hint="ask for fewer quantiles, samples or bars, or a shorter lookback; or start the server with a "
                 "larger --max-cost")
    return cost


__all__ = ["DEFAULT_MAX_COST", "check_cost", "forecast_cost"]
