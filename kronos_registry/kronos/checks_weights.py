"""The weights checks of a Kronos artifact: the tensors fit the config, are usable and finite,
and the parameter count is the one declared.

Cheap first: the shape keys the weights' header implies (layer indices, embedding sizes) must
equal the config's, and only then is the architecture built (on the meta device) for the
tensor-by-tensor comparison and the parameter count; nothing is built from a config that
``accepted_config`` refused or that the weights contradict.

Weights must be of a dtype the model computes in (see ``FLOAT_DTYPES``) and finite: every
check run (sync, import, verify) scans the tensors for NaN/Inf, one ``aminmax`` pass per tensor.
On a Kronos-base-sized file (409 MB, random weights, page-cached) on the 2-core development
machine the scan took 30-130 ms with one torch thread (1.1-1.4 s with two threads while the
machine ran at load 7), against 260-800 ms for the sha256 that a sync computes anyway and the
download before it, so it is not reserved for ``--deep``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping

import attrs

from kronos_registry.kronos.architecture import architecture, count_parameters, implied_config
from kronos_registry.kronos.checks_config import accepted_config, listing
from kronos_registry.kronos.config import CONFIG_FILE
from kronos_registry.kronos.locate import PICKLE_FILE, SAFETENSORS_FILE
from registry.checks import CheckContext, Problem, read_safetensors_header
from registry.spec import Entry

# The model computes in float32. F32, F16 and BF16 weights convert to it exactly (every
# half-precision value is a float32 value), so the loaded model is the stored one. F64 would be
# rounded, F8 needs scales Kronos does not carry, and integers or booleans would be cast into
# meaningless floats (U8 -> 0.0 ... 255.0): all refused. The model's integer buffers (the
# quantizer's code bases) take the integer dtypes that hold their values exactly.
FLOAT_DTYPES = ("F32", "F16", "BF16")
INT_DTYPES = ("I64", "I32")
TORCH_DTYPE_NAMES = {
    "float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64",
    "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}


def _described(values: Mapping) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items())


def _config_weights_problem(config: Mapping, implied: Mapping, entry: Entry,
                            weights_file: str) -> Problem | None:
    wrong = {key: config[key] for key in implied if config.get(key) != implied[key]}
    if not wrong:
        return None
    return Problem(
        f"{_described(wrong)} does not fit the weights: {weights_file} looks like {_described(implied)}",
        file=CONFIG_FILE, field=next(iter(wrong)),
        hint=f"make sure config.json and {weights_file} of '{entry.name}' come from the same checkpoint "
        f"(its `source:` at {entry.location_of('source')}); the weights need a config with {_described(implied)}",
    )


@attrs.frozen
class KronosWeights:
    """Weights fit the config, are of a dtype the model computes in, and are finite.

    Cheap first: the shape keys the header implies must equal the config's, and only then is
    the architecture built (meta device) for the tensor-by-tensor comparison. Pickle weights
    (`pytorch_model.bin`) are refused unless the entry opts in, and then are read only with
    `torch.load(weights_only=True)`.
    """

    name: str = "kronos-weights"

    def run(self, ctx: CheckContext) -> Iterator[Problem]:
        folder, entry = ctx.folder, ctx.entry
        safetensors_path, pickle_path = folder / SAFETENSORS_FILE, folder / PICKLE_FILE
        if not safetensors_path.is_file() and not pickle_path.is_file():
            return  # RequiredFiles names the missing file
        if not safetensors_path.is_file() and not entry.allow_pickle:
            yield Problem(
                f"only legacy pickle weights ({PICKLE_FILE}) found; pickle files can run code when loaded",
                file=PICKLE_FILE, field="allow_pickle",
                hint=f"convert them to {SAFETENSORS_FILE}, or set `allow_pickle: true` and "
                f"`files: [config.json, {PICKLE_FILE}]` on '{entry.name}' if you trust the source",
            )
            return
        config = accepted_config(folder, entry)
        if config is None:
            return  # KronosConfig says why; nothing is built from a refused config
        state = None
        if safetensors_path.is_file():
            tensors, errors = read_safetensors_header(safetensors_path)
            if errors:
                return  # SafetensorsHeader reports them
            actual = {name: (tuple(info["shape"]), info["dtype"]) for name, info in tensors.items()}
            weights_file = SAFETENSORS_FILE
        else:
            try:
                state = load_pickle_weights(pickle_path)
            except Exception as exc:  # weights_only refuses anything but tensors: say so plainly
                yield Problem(
                    f"refused to unpickle: it holds more than tensors ({type(exc).__name__}), "
                    "which can run code when loaded",
                    file=PICKLE_FILE, field="allow_pickle",
                    hint=f"do not load it; get {SAFETENSORS_FILE} weights from a source you trust",
                )
                return
            actual = {name: (tuple(t.shape), TORCH_DTYPE_NAMES.get(str(t.dtype).removeprefix("torch."), str(t.dtype)))
                      for name, t in state.items()}
            weights_file = PICKLE_FILE
        shapes = {name: shape for name, (shape, _) in actual.items()}
        implied = implied_config(entry.kind, shapes)
        mismatch = _config_weights_problem(config, implied, entry, weights_file)
        if mismatch:
            yield mismatch
            return  # the architecture of a config the weights contradict is never built
        expected = architecture(entry.kind, tuple(sorted(config.items()))).tensors
        problems = [*_shape_problems(expected, shapes, entry, weights_file, implied),
                    *_dtype_problems(expected, actual, entry, weights_file)]
        yield from problems
        if not problems:
            yield from _non_finite_problems(safetensors_path if state is None else state, weights_file, entry)


def load_pickle_weights(path: Path) -> dict:
    """A legacy state dict, read with `weights_only=True`: tensors and plain containers only."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _shape_problems(expected: Mapping, actual: Mapping, entry: Entry, weights_file: str,
                    implied: Mapping) -> Iterator[Problem]:
    hint = (f"the weights do not belong to this config; make sure config.json and {weights_file} "
            f"of '{entry.name}' come from the same checkpoint")
    if implied:
        hint += f" (the weights look like {_described(implied)})"
    missing = sorted(expected.keys() - actual.keys())
    unexpected = sorted(actual.keys() - expected.keys())
    if missing:
        yield Problem(f"{len(missing)} tensors missing, e.g. {listing(missing[:3])}",
                      file=weights_file, field=missing[0], hint=hint)
    if unexpected:
        yield Problem(f"{len(unexpected)} unexpected tensors, e.g. {listing(unexpected[:3])}",
                      file=weights_file, field=unexpected[0], hint=hint)
    for name in sorted(expected.keys() & actual.keys()):
        if expected[name][0] != actual[name]:
            yield Problem(f"shape {list(actual[name])}, the config implies {list(expected[name][0])}",
                          file=weights_file, field=name, hint=hint, kind="tensors of a shape the config does not imply")


def _dtype_problems(expected: Mapping, actual: Mapping, entry: Entry, weights_file: str) -> Iterator[Problem]:
    for name in sorted(expected.keys() & actual.keys()):
        floating, dtype = expected[name][1], actual[name][1]
        allowed = FLOAT_DTYPES if floating else INT_DTYPES
        if dtype in allowed:
            continue
        what = "float32" if floating else "int64"
        yield Problem(
            f"dtype {dtype}; the model holds it as {what} and loads only {', '.join(allowed)} exactly",
            file=weights_file, field=name, kind=f"tensors of dtype {dtype}",
            hint=f"these are not weights the model can use (they would be cast on load); get {weights_file} "
            f"of '{entry.name}' saved in {', '.join(FLOAT_DTYPES)}",
        )


def _non_finite_problems(weights, weights_file: str, entry: Entry) -> Iterator[Problem]:
    """Every floating tensor is finite: one pass of aminmax per tensor (NaN and +-Inf show in the
    extremes), no copy of the weights beyond what safetensors maps."""
    import torch

    def tensors():
        if isinstance(weights, Mapping):
            yield from weights.items()
            return
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name)

    for name, tensor in tensors():
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        low, high = torch.aminmax(tensor)
        if not (torch.isfinite(low) and torch.isfinite(high)):
            yield Problem("NaN or Inf values", file=weights_file, field=name,
                          kind="tensors holding NaN or Inf values",
                          hint=f"the checkpoint of '{entry.name}' is corrupt or diverged; use another revision")


@attrs.frozen
class KronosParams:
    """The parameter count equals the entry's declared `params` (to its rounding)."""

    name: str = "kronos-params"

    def run(self, ctx: CheckContext) -> Iterator[Problem]:
        declared = ctx.entry.params
        if declared is None:
            return
        config = accepted_config(ctx.folder, ctx.entry)
        if config is None or not _weights_fit(ctx.folder, ctx.entry, config):
            return  # KronosConfig / KronosWeights say why; nothing is built
        actual = count_parameters(ctx.entry.kind, config)
        if not declared.matches(actual):
            yield Problem(
                f"the checkpoint has {actual:,} parameters but the registry declares {declared}",
                file=CONFIG_FILE, field="params",
                hint=f"this is not the checkpoint '{ctx.entry.name}' expects; fix its source, or its "
                f"`params` at {ctx.entry.location_of('params')}",
            )


def _weights_fit(folder: Path, entry: Entry, config: Mapping) -> bool:
    """False when the safetensors header contradicts the config's shape keys (cheap, no build)."""
    path = folder / SAFETENSORS_FILE
    if not path.is_file():
        return True
    tensors, errors = read_safetensors_header(path)
    if errors:
        return True  # a damaged header says nothing about the config; the count is still bounded
    implied = implied_config(entry.kind, {name: tuple(info["shape"]) for name, info in tensors.items()})
    return _config_weights_problem(config, implied, entry, SAFETENSORS_FILE) is None


__all__ = ["KronosWeights", "KronosParams", "load_pickle_weights", "FLOAT_DTYPES", "INT_DTYPES",
           "TORCH_DTYPE_NAMES"]
