"""Resumable training state: one file per stage, replaced atomically.

The file holds everything the next optimiser step depends on: the module's weights, the
optimiser's moments, the schedule's position, every rank's random-number state (dropout),
where in which epoch the run stood, the best validation loss so far and the epoch log.
Epoch orders are drawn from (seed, epoch) alone, so a resumed run cuts the same batches
and, on the same machine and settings, ends with the same weights as an uninterrupted one.

A write goes to a temporary file that replaces the old one only when complete (and is
flushed to disk first), so a kill at any moment leaves the previous state readable.
Files are read with ``torch.load(weights_only=True)``: tensors and plain values only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

STATE_FORMAT = 1


def state_path(workdir: Path, stage: str) -> Path:
    return Path(workdir) / f"{stage}.state.pt"


def save_state(path: Path, state: dict[str, Any]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save({"format": STATE_FORMAT, **state}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def load_state(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none."""
    import torch

    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != STATE_FORMAT:
        return None
    return state


def rng_state(device: str) -> dict[str, Any]:
    import torch

    state = {"cpu": torch.get_rng_state()}
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return state


def restore_rng(state: dict[str, Any], device: str) -> None:
    import torch

    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.startswith("cuda"):
        torch.cuda.set_rng_state(state["cuda"], torch.device(device))


__all__ = ["load_state", "restore_rng", "rng_state", "save_state", "state_path"]
