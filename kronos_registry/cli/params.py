"""Option types and checks the commands share: sizes and durations (`serve`, `mcp`), devices."""

from __future__ import annotations

import re

import click

SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
              "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "t": 1000**4, "tb": 1000**4}
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


class SizeParam(click.ParamType):
    """A byte size: 2GiB, 500MB, 1.5G, or plain bytes."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else None
        if not match or unit not in SIZE_UNITS:
            self.fail(f"'{value}' is not a size: write e.g. 2GiB, 500MB, 1.5G or a number of bytes", param, ctx)
        return int(float(match.group(1)) * SIZE_UNITS[unit])


class DurationParam(click.ParamType):
    """Seconds, with an optional unit (90, 90s, 5m, 1h); a negative value or 'forever' means never."""

    name = "SECONDS"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, (int, float)):
            return None if value is not None and value < 0 else value
        text = str(value).strip().lower()
        if text in ("forever", "never", "inf"):
            return None
        match = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*([smh]?)", text)
        if not match:
            self.fail(f"'{value}' is not a duration: write seconds (300), or 5m, 1h; -1 or 'forever' for never",
                      param, ctx)
        seconds = float(match.group(1)) * DURATION_UNITS[match.group(2)]
        return None if seconds < 0 else seconds


def check_device(device: str | None) -> None:
    if device is None:
        return
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError) as exc:
        raise click.BadParameter(f"'{device}' is not a torch device ({exc})", param_hint="--device") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine; use --device cpu",
                                 param_hint="--device")


def bounded(name: str, kind: type = int) -> click.ParamType:
    """The click type of forecast parameter ``name``, its range from ``services.limits.BOUNDS``."""
    from kronos_registry.services.limits import BOUNDS

    bound = BOUNDS[name]
    ranged = click.IntRange if kind is int else click.FloatRange
    options = {"min_open": bound.low_open, "max_open": bound.high_open} if kind is float else {}
    if kind is int and (bound.low_open or bound.high_open):  # whole numbers: an open bound is the next one in
        return click.IntRange(bound.low + bound.low_open, None if bound.high is None else bound.high - bound.high_open)
    return ranged(bound.low, bound.high, **options)
