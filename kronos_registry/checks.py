"""Kronos checks for the registry's verification framework.

Each check yields ``Problem``s naming the file, the field and a fix. ``kronos_checks(entry)``
is the ``CheckProvider`` the loader runs on every Kronos artifact before it may enter the
store, and again on ``verify``.
"""

from __future__ import annotations

import inspect
import json
import math
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

# The tokenizer each published model was trained with, told apart by `group_size`
# (Tokenizer-2k: 5, Tokenizer-base: 4); the two are otherwise identical in shape.
PUBLISHED_TOKENIZER_GROUP_SIZE = {
    "NeoQuasar/Kronos-mini": (5, "Kronos-Tokenizer-2k"),
    "NeoQuasar/Kronos-small": (4, "Kronos-Tokenizer-base"),
    "NeoQuasar/Kronos-base": (4, "Kronos-Tokenizer-base"),
    "NeoQuasar/Kronos-large": (4, "Kronos-Tokenizer-base"),
}


def model_classes():
    from .model import Kronos, KronosTokenizer

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
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, Problem(f"{CONFIG_FILE} is not valid JSON ({exc})", file=CONFIG_FILE,
                             hint="restore config.json from the source repo")
    if not isinstance(config, dict):
        return None, Problem(f"{CONFIG_FILE} holds a {type(config).__name__}, not a JSON object",
                             file=CONFIG_FILE, hint="config.json must map argument names to values")
    return config, None


def _type_problem(key: str, value: object) -> str | None:
    if key in BOOL_KEYS:
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number"
    if key in INT_KEYS:
        if not float(value).is_integer():
            return "must be a whole number"
        if value <= 0:
            return "must be positive"
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
        yield Problem(f"missing keys: {', '.join(missing)}", file=CONFIG_FILE, field=missing[0],
                      hint=f"add them with the values the {role} was trained with")
    if unknown:
        yield Problem(f"unknown keys: {', '.join(unknown)}", file=CONFIG_FILE, field=unknown[0],
                      hint=f"remove them: the Kronos {role} constructor does not take them")
    for key in sorted(expected & set(config)):
        why = _type_problem(key, config[key])
        if why:
            yield Problem(f"{key} = {config[key]!r} {why}", file=CONFIG_FILE, field=key,
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
        config, problem = read_config(ctx.folder)
        if problem:
            yield problem
            return
        schema = list(schema_problems(config, ctx.entry.kind, ctx.entry.name))
        yield from schema
        if not schema and ctx.entry.config:
            yield from _pinned_config_problems(config, ctx.entry)


def _pinned_config_problems(config: Mapping, entry: Entry) -> Iterator[Problem]:
    for key, expected in sorted(entry.config.items()):
        actual = config.get(key)
        if actual == expected:
            continue
        neutral = key in INFERENCE_NEUTRAL_KEYS
        yield Problem(
            f"{key} is {actual!r} but the registry pins {expected!r}"
            + (" (does not change inference)" if neutral else ""),
            file=CONFIG_FILE, field=key, severity="warning" if neutral else "error",
            hint=f"this is not the checkpoint '{entry.name}' expects: check its source, "
            f"or update config.{key} of '{entry.name}' in models.yaml if the new checkpoint is intended",
        )


@lru_cache(maxsize=32)
def expected_tensors(role: str, config_items: tuple) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict, from the architecture built on the meta device."""
    import torch

    with torch.device("meta"):
        module = model_classes()[role](**dict(config_items))
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def count_parameters(role: str, config: Mapping) -> int:
    import torch

    with torch.device("meta"):
        module = model_classes()[role](**config)
    return sum(p.numel() for p in module.parameters())


def _valid_config(folder: Path, role: str) -> dict | None:
    config, problem = read_config(folder)
    if problem or any(p.is_error for p in schema_problems(config, role, "")):
        return None  # KronosConfig reports why
    return config


@attrs.frozen
class KronosWeights:
    """Tensor names and shapes equal the architecture's; finite values in deep mode.

    Pickle weights (`pytorch_model.bin`) are refused unless the entry opts in, and then are
    read only with `torch.load(weights_only=True)`.
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
        config = _valid_config(folder, entry.kind)
        if config is None:
            return
        expected = expected_tensors(entry.kind, tuple(sorted(config.items())))
        if safetensors_path.is_file():
            tensors, errors = read_safetensors_header(safetensors_path)
            if errors:
                return  # SafetensorsHeader reports them
            actual = {name: tuple(info["shape"]) for name, info in tensors.items()}
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
            actual = {name: tuple(t.shape) for name, t in state.items()}
            weights_file = PICKLE_FILE
        yield from _shape_problems(expected, actual, entry, weights_file)
        if ctx.deep and weights_file == SAFETENSORS_FILE:
            yield from _non_finite_problems(safetensors_path)


def load_pickle_weights(path: Path) -> dict:
    """A legacy state dict, read with `weights_only=True`: tensors and plain containers only."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _shape_problems(expected: Mapping, actual: Mapping, entry: Entry, weights_file: str) -> Iterator[Problem]:
    hint = (f"the weights do not belong to this config; make sure config.json and {weights_file} "
            f"of '{entry.name}' come from the same checkpoint")
    missing = sorted(expected.keys() - actual.keys())
    unexpected = sorted(actual.keys() - expected.keys())
    if missing:
        yield Problem(f"{len(missing)} tensors missing, e.g. {', '.join(missing[:3])}",
                      file=weights_file, field=missing[0], hint=hint)
    if unexpected:
        yield Problem(f"{len(unexpected)} unexpected tensors, e.g. {', '.join(unexpected[:3])}",
                      file=weights_file, field=unexpected[0], hint=hint)
    for name in sorted(expected.keys() & actual.keys()):
        if expected[name] != actual[name]:
            yield Problem(f"shape {list(actual[name])}, the config implies {list(expected[name])}",
                          file=weights_file, field=name, hint=hint)


def _non_finite_problems(path: Path) -> Iterator[Problem]:
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        for name in handle.keys():
            tensor = handle.get_tensor(name)
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                yield Problem("holds NaN or Inf values", file=SAFETENSORS_FILE, field=name,
                              hint="the checkpoint is corrupt or diverged; use another revision")


@attrs.frozen
class KronosParams:
    """The parameter count equals the entry's declared `params` (to its rounding)."""

    name: str = "kronos-params"

    def run(self, ctx: CheckContext) -> Iterator[Problem]:
        declared = ctx.entry.params
        config = _valid_config(ctx.folder, ctx.entry.kind)
        if declared is None or config is None:
            return
        actual = count_parameters(ctx.entry.kind, config)
        if not declared.matches(actual):
            yield Problem(
                f"the checkpoint has {actual:,} parameters but the registry declares {declared}",
                file=CONFIG_FILE, field="params",
                hint=f"this is not the checkpoint '{ctx.entry.name}' expects; fix its source, or its "
                "`params` in models.yaml",
            )


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
                    hint=f"pair '{ctx.entry.name}' with a tokenizer of the same {key} in models.yaml",
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
            hint=f"set `tokenizer:` of '{entry.name}' in models.yaml to the entry for NeoQuasar/{tokenizer_repo}",
        )


def kronos_checks(entry: Entry) -> list:
    """The CheckProvider for Kronos artifacts: the engine's generic checks plus ours."""
    generic = generic_checks(entry, file_hints={CONFIG_FILE: MISSING_CONFIG_HINT,
                                                SAFETENSORS_FILE: MISSING_WEIGHTS_HINT})
    return [*generic, KronosConfig(), KronosWeights(), KronosParams(), KronosPairing()]
