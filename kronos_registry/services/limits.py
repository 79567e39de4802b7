"""What one forecast request may ask of a long-running face (`serve`, `mcp`).

The service enforces these and `serve`'s options set them (their defaults shown in
`serve --help` are these). Only attrs here, so registering the command stays light.
"""

from __future__ import annotations

import attrs

MIB = 1024 * 1024


@attrs.frozen
class Limits:
    """What one request may ask (each documented in `serve --help`)."""

    max_pred_len: int = 1024
    max_samples: int = 64
    max_rows: int = 100_000            # candles in one request
    max_body_bytes: int = 16 * MIB
    max_queue: int = 64                # series waiting for a batch, all models together


__all__ = ["Limits", "MIB"]
