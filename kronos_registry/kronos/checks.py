"""Kronos checks for the registry's verification framework.

Each check yields ``Problem``s naming the file, the field and a fix. ``kronos_checks(entry)``
is the ``CheckProvider`` the loader runs on every Kronos artifact before it may enter the
store, and again on ``verify``.

Cheap checks come first and gate the costly ones. config.json is read only up to
``MAX_CONFIG_BYTES``, then parsed, checked against the constructor (types, size limits) and
against the config pinned in the registry; the shape keys the weights' header implies (layer
indices, embedding sizes) must agree with it too. Only a config that passes all of that is
ever used to build the architecture (on the meta device) for the tensor-by-tensor comparison
and the parameter count: a refused config builds nothing, however large it claims to be.

Weights must be of a dtype the model computes in (see ``FLOAT_DTYPES``) and finite: every
check run (sync, import, verify) scans the tensors for NaN/Inf, one ``aminmax`` pass per tensor.
On a Kronos-base-sized file (409 MB, random weights, page-cached) on the 2-core development
machine the scan took 30-130 ms with one torch thread (1.1-1.4 s with two threads while the
machine ran at load 7), against 260-800 ms for the sha256 that a sync computes anyway and the
download before it, so it is not reserved for ``--deep``.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Mapping

import attrs

from registry.checks import CheckContext, Problem, generic_checks, read_safetensors_header
from registry.spec import Entry

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
PICKLE_FILE = "pytorch_model.bin"

# The type of every constructor argument. The key *set* comes from the constructors
# themselves (see `config_keys`), so this table cannot silently drift from the model code:
# a test asserts both agree.
INT_KEYS = {"d_in", "d_model", "n_heads", "ff_dim", "n_enc_layers", "n_dec_layers", "s1_bits", "s2_bits",
            "group_size", "n_layers"}
PROBABILITY_KEYS = {"ffn_dropout_p", "attn_dropout_p", "resid_dropout_p", "token_dropout_p"}
FLOAT_KEYS = {"beta", "gamma0", "gamma", "zeta"}
BOOL_KEYS = {"learn_te"}

# Keys that do not change inference: a mismatch with the pinned config is only a warning.
INFERENCE_NEUTRAL_KEYS = PROBABILITY_KEYS | FLOAT_KEYS

# A Kronos config.json is a few hundred bytes; nothing larger is read, let alone parsed.
MAX_CONFIG_BYTES = 1 << 20
# At most this many key names are listed in one problem; the rest are counted.
MAX_LISTED_KEYS = 5
# Size sanity, checked before anything is built from a config: far beyond every published
# Kronos (12 layers, d_model 832, 10+10 bits), yet bounded, so that building the architecture
# on the meta device stays under a few seconds.
SIZE_LIMITS = {
    "n_layers": 256, "n_enc_layers": 256, "n_dec_layers": 256, "d_model": 65536, "ff_dim": 262144,
    "n_heads": 1024, "d_in": 1024, "s1_bits": 20, "s2_bits": 20, "group_size": 40,
}

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

# The tokenizer each published model was trained with, told apart by `group_size`
# (Tokenizer-2k: 5, Tokenizer-base: 4); the two are otherwise identical in shape.
PUBLISHED_TOKENIZER_GROUP_SIZE = {
    "NeoQuasar/Kronos-mini": (5, "Kronos-Tokenizer-2k"),
    "NeoQuasar/Kronos-small": (4, "Kronos-Tokenizer-base"),
    "NeoQuasar/Kronos-base": (4, "Kronos-Tokenizer-base"),
    "NeoQuasar/Kronos-large": (4, "Kronos-Tokenizer-base"),
}


def model_classes():
    from kronos_registry.kronos.model import Kronos, KronosTokenizer

    return {"tokenizer": KronosTokenizer, "model": Kronos}


@lru_cache(maxsize=None)
def config_keys(role: str) -> frozenset[str]:
    """The constructor arguments of the role's class: exactly the keys config.json must hold."""
    signature = inspect.signature(model_classes()[role].__init__)
    return frozenset(name for name in signature.parameters if name != "self")


def detect_role(config: Mapping) -> str | None:
    """Which role's constructor the keys fit best (None when neither fits at all)."""
    keys = set(config)
    scores = {role: len(keys & config_keys(role) - (config_keys("model") & config_keys("tokenizer")))
              for role in ("tokenizer", "model")}
    best = max(scores, key=scores.get)
    return best if scores[best] else None


MISSING_CONFIG_HINT = (
    "a Kronos checkpoint folder holds config.json (the constructor arguments) beside "
    "model.safetensors; save it with save_pretrained(), or copy config.json from the hub repo"
)


MISSING_WEIGHTS_HINT = (
    f"Kronos weights are read from {SAFETENSORS_FILE}; if the source holds only legacy {PICKLE_FILE}, "
    f"convert it with safetensors.torch.save_file, or, if you trust it, set `allow_pickle: true` and "
    f"`files: [config.json, {PICKLE_FILE}]` on the entry"
)


def read_config(folder: Path) -> tuple[dict | None, Problem | None]:
    path = folder / CONFIG_FILE
    if not path.is_file():
        return None, Problem(f"{CONFIG_FILE} is missing", file=CONFIG_FILE, hint=MISSING_CONFIG_HINT)
    with open(path, "rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        return None, Problem(
            f"{CONFIG_FILE} is {path.stat().st_size:,} bytes; a Kronos config is a few hundred "
            f"(at most {MAX_CONFIG_BYTES:,} are read)",
            file=CONFIG_FILE, hint="restore config.json from the source repo: it holds only the constructor arguments")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, Problem(f"{CONFIG_FILE} is not valid JSON ({exc})", file=CONFIG_FILE,
                             hint="restore config.json from the source repo")
    except RecursionError:
        return None, Problem(f"{CONFIG_FILE} nests too deeply to be a Kronos config", file=CONFIG_FILE,
                             hint="restore config.json from the source repo")
    if not isinstance(config, dict):
        return None, Problem(f"{CONFIG_FILE} holds a {type(config).__name__}, not a JSON object",
                             file=CONFIG_FILE, hint="config.json must map argument names to values")
    return config, None


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _listing(keys: list[str]) -> str:
    """Up to MAX_LISTED_KEYS names (each cut short), then how many more were left out."""
    shown = ", ".join(k if len(k) <= 40 else f"{k[:40]}..." for k in keys[:MAX_LISTED_KEYS])
    rest = len(keys) - MAX_LISTED_KEYS
    return f"{shown} and {rest:,} more" if rest > 0 else shown


def _type_problem(key: str, value: object) -> str | None:
    if key in BOOL_KEYS:
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number"
    if key in INT_KEYS:
        if isinstance(value, float) and not value.is_integer():
            return "must be a whole number"
        if value <= 0:
            return "must be positive"
        if key in SIZE_LIMITS and value > SIZE_LIMITS[key]:
            return (f"is beyond any Kronos (at most {SIZE_LIMITS[key]:,}); "
                    "refused before anything is built from it")
    if key in PROBABILITY_KEYS and not 0 <= value < 1:
        return "must be a probability in [0, 1)"
    if key in FLOAT_KEYS and not math.isfinite(value):
        return "must be finite"
    return None


def schema_problems(config: Mapping, role: str, entry_name: str) -> Iterator[Problem]:
    """Missing, unknown, mistyped and impossible keys for the role's constructor."""
    expected = config_keys(role)
    detected = detect_role(config)
    if detected and detected != role:
        other = "tokenizer" if role == "model" else "model"
        yield Problem(
            f"this is a Kronos {other} checkpoint, but '{entry_name}' is declared as a {role}",
            file=CONFIG_FILE, field="role",
            hint=f"point '{entry_name}' at a {role} checkpoint, or move the entry to "
            f"`{other}s:` (the {other} and {role} folders look swapped)",
        )
        return
    missing = sorted(expected - set(config))
    unknown = sorted(set(config) - expected)
    if missing:
        yield Problem(f"missing keys: {_listing(missing)}", file=CONFIG_FILE, field=missing[0],
                      hint=f"add them with the values the {role} was trained with")
    if unknown:
        yield Problem(f"unknown keys: {_listing(unknown)}", file=CONFIG_FILE, field=_listing(unknown[:1]),
                      hint=f"remove them: the Kronos {role} constructor does not take them")
    for key in sorted(expected & set(config)):
        why = _type_problem(key, config[key])
        if why:
            yield Problem(f"{key} = {_short(config[key])} {why}", file=CONFIG_FILE, field=key,
                          hint=f"fix {key} in config.json")
    yield from _impossible_combinations(config, role)


def _impossible_combinations(config: Mapping, role: str) -> Iterator[Problem]:
    d_model, n_heads = config.get("d_model"), config.get("n_heads")
    if _positive_ints(d_model, n_heads) and d_model % n_heads:
        yield Problem(f"d_model {d_model} is not divisible by n_heads {n_heads}", file=CONFIG_FILE,
                      field="n_heads", hint="choose n_heads that divides d_model")
    if role == "tokenizer":
        bits = (config.get("s1_bits") or 0) + (config.get("s2_bits") or 0)
        group = config.get("group_size")
        if _positive_ints(bits, group) and bits % group:
            yield Problem(f"s1_bits + s2_bits = {bits} is not divisible by group_size {group}",
                          file=CONFIG_FILE, field="group_size", hint="choose a group_size that divides it")


def _positive_ints(*values) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


@attrs.frozen
class KronosConfig:
    """config.json exists, is a JSON object, fits the role's constructor and the pinned config."""

    name: str = "kronos-config"

    def run(self, ctx: CheckContext) -> Iterator[Problem]:
        if CONFIG_FILE in ctx.entry.files and not (ctx.folder / CONFIG_FILE).is_file():
            return  # RequiredFiles reports a missing required file
        yield from config_problems(ctx.folder, ctx.entry)[1]


def config_problems(folder: Path, entry: Entry) -> tuple[dict | None, list[Problem]]:
    """The cheap config checks, in order: read (size-capped), parse, schema and size limits,
    the pinned config. Returns the config (None when unreadable) and every problem."""
    config, problem = read_config(folder)
    if problem:
        return None, [problem]
    problems = list(schema_problems(config, entry.kind, entry.name))
    if entry.config and not any(p.field == "role" for p in problems):
        flagged = {p.field for p in problems}
        problems += [p for p in _pinned_config_problems(config, entry) if p.field not in flagged]
    return config, problems


def accepted_config(folder: Path, entry: Entry) -> dict | None:
    """The config when every cheap config check passes; None means nothing may be built from it."""
    config, problems = config_problems(folder, entry)
    return None if config is None or any(p.is_error for p in problems) else config


def _pinned_config_problems(config: Mapping, entry: Entry) -> Iterator[Problem]:
    for key, expected in sorted(entry.config.items()):
        actual = config.get(key)
        if actual == expected:
            continue
        neutral = key in INFERENCE_NEUTRAL_KEYS
        yield Problem(
            f"{key} is {_short(actual)} but the registry pins {expected!r}"
            + (" (does not change inference)" if neutral else ""),
            file=CONFIG_FILE, field=key, severity="warning" if neutral else "error",
            hint=f"this is not the checkpoint '{entry.name}' expects: check its source, or update "
            f"config.{key} of '{entry.name}' at {entry.location_of(f'config.{key}')} if the new checkpoint is intended",
        )


@attrs.frozen
class Architecture:
    """What the architecture built from a config holds: each state-dict tensor's shape and
    whether it is floating point, and the parameter count."""

    tensors: Mapping[str, tuple[tuple[int, ...], bool]]
    params: int


@lru_cache(maxsize=32)
def architecture(role: str, config_items: tuple) -> Architecture:
    """Build the role's module with its weights on the meta device (no memory). Call only with
    an accepted config (see ``accepted_config``): its size limits keep this under a few seconds."""
    from kronos_registry.kronos.model import build_shapes_only

    module = build_shapes_only(model_classes()[role], **dict(config_items))
    tensors = {name: (tuple(t.shape), t.is_floating_point()) for name, t in module.state_dict().items()}
    return Architecture(tensors=tensors, params=sum(p.numel() for p in module.parameters()))


def expected_tensors(role: str, config_items: tuple) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict, from the architecture built on the meta device."""
    return {name: shape for name, (shape, _) in architecture(role, config_items).tensors.items()}


def count_parameters(role: str, config: Mapping) -> int:
    return architecture(role, tuple(sorted(config.items()))).params


def _valid_config(folder: Path, role: str) -> dict | None:
    config, problem = read_config(folder)
    if problem or any(p.is_error for p in schema_problems(config, role, "")):
        return None  # KronosConfig reports why
    return config


# Where each shape key shows in a checkpoint's tensors: (tensor, axis), or a layer list's prefix
# and what to add to its largest index (the tokenizer, like upstream's, holds n - 1 blocks per
# stack). A test builds the architecture for several configs and asserts these agree with it.
_LAYERS = {"model": {"n_layers": ("transformer", 1)},
           "tokenizer": {"n_enc_layers": ("encoder", 2), "n_dec_layers": ("decoder", 2)}}
_DIMS = {
    "model": {"d_model": [("embedding.emb_s1.weight", 1)], "ff_dim": [("transformer.0.ffn.w1.weight", 0)]},
    "tokenizer": {"d_model": [("embed.weight", 0)], "d_in": [("embed.weight", 1)],
                  "ff_dim": [("encoder.0.ffn.w1.weight", 0), ("decoder.0.ffn.w1.weight", 0)],
                  "s1_bits": [("post_quant_embed_pre.weight", 1)], "group_size": [("tokenizer.bsq.group_basis", 0)]},
}


def implied_config(role: str, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """The shape keys the weights imply, read from tensor names and shapes alone (no build):
    layer counts from the largest layer index, sizes from the embeddings. Keys the tensors do
    not show (a foreign checkpoint) are left out."""
    implied: dict[str, int] = {}
    for key, places in _DIMS[role].items():
        for name, axis in places:
            shape = shapes.get(name)
            if shape is not None and len(shape) > axis:
                implied[key] = int(shape[axis])
                break
    for key, (prefix, offset) in _LAYERS[role].items():
        pattern = re.compile(rf"{prefix}\.(\d+)\.")
        indices = [int(m.group(1)) for name in shapes if (m := pattern.match(name))]
        if indices:
            implied[key] = max(indices) + offset
    if role == "model":
        for key, name in (("s1_bits", "embedding.emb_s1.weight"), ("s2_bits", "embedding.emb_s2.weight")):
            rows = (shapes.get(name) or (0,))[0]
            if rows > 0 and rows & (rows - 1) == 0:
                implied[key] = rows.bit_length() - 1
    elif "s1_bits" in implied and len(shapes.get("quant_embed.weight") or ()) == 2:
        implied["s2_bits"] = int(shapes["quant_embed.weight"][0]) - implied["s1_bits"]
    return dict(sorted(implied.items()))


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
        yield Problem(f"{len(missing)} tensors missing, e.g. {_listing(missing[:3])}",
                      file=weights_file, field=missing[0], hint=hint)
    if unexpected:
        yield Problem(f"{len(unexpected)} unexpected tensors, e.g. {_listing(unexpected[:3])}",
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


@attrs.frozen
class KronosPairing:
    """A model and its tokenizer fit together: same s1/s2 bits, d_in 6, the trained-with tokenizer."""

    name: str = "kronos-pairing"

    def run(self, ctx: CheckContext) -> Iterator[Problem]:
        tokenizer_folder = ctx.related.get("tokenizer")
        if ctx.entry.kind != "model" or tokenizer_folder is None:
            return
        model_config = _valid_config(ctx.folder, "model")
        tokenizer_config = _valid_config(tokenizer_folder, "tokenizer")
        if model_config is None or tokenizer_config is None:
            return
        tokenizer_name = ctx.entry.tokenizer
        for key in ("s1_bits", "s2_bits"):
            if model_config[key] != tokenizer_config[key]:
                yield Problem(
                    f"{key} is {model_config[key]} but tokenizer '{tokenizer_name}' has {tokenizer_config[key]}",
                    file=CONFIG_FILE, field=key,
                    hint=f"pair '{ctx.entry.name}' with a tokenizer of the same {key} "
                    f"(`tokenizer:` at {ctx.entry.location_of('tokenizer')})",
                )
        if tokenizer_config["d_in"] != 6:
            yield Problem(
                f"tokenizer '{tokenizer_name}' takes d_in={tokenizer_config['d_in']} features; Kronos "
                "predictors feed 6 (open, high, low, close, volume, amount)",
                file=CONFIG_FILE, field="d_in", hint="use a tokenizer trained on 6 features",
            )
        yield from _published_pairing_problems(ctx.entry, tokenizer_config)


def _published_pairing_problems(entry: Entry, tokenizer_config: Mapping) -> Iterator[Problem]:
    repo = getattr(entry.source, "repo_id", None)
    if repo not in PUBLISHED_TOKENIZER_GROUP_SIZE:
        return
    group_size, tokenizer_repo = PUBLISHED_TOKENIZER_GROUP_SIZE[repo]
    if tokenizer_config["group_size"] != group_size:
        yield Problem(
            f"{repo} was trained with {tokenizer_repo} (group_size {group_size}), but tokenizer "
            f"'{entry.tokenizer}' has group_size {tokenizer_config['group_size']}: it would load and "
            "silently forecast worse",
            file=CONFIG_FILE, field="tokenizer",
            hint=f"set `tokenizer:` of '{entry.name}' (at {entry.location_of('tokenizer')}) to the entry for "
            f"NeoQuasar/{tokenizer_repo}",
        )


def kronos_checks(entry: Entry) -> list:
    """The CheckProvider for Kronos artifacts: the engine's generic checks plus ours."""
    generic = generic_checks(entry, file_hints={CONFIG_FILE: MISSING_CONFIG_HINT,
                                                SAFETENSORS_FILE: MISSING_WEIGHTS_HINT})
    return [*generic, KronosConfig(), KronosWeights(), KronosParams(), KronosPairing()]
