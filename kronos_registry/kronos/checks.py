"""Kronos checks for the registry's verification framework: ``kronos_checks(entry)``.

Each check yields ``Problem``s naming the file, the field and a fix. ``kronos_checks`` is the
``CheckProvider`` the loader runs on every Kronos artifact before it may enter the store, and
again on ``verify``:

    ConfigCheck     config.json: read (size-capped), schema, size limits, the pinned config  (checks_config.py)
    KronosWeights   the tensors fit the config, of a usable dtype, finite                    (checks_weights.py)
    KronosParams    the parameter count is the declared one                                  (checks_weights.py)
    KronosPairing   a model and its tokenizer fit together                                   (here)

Cheap checks come first and gate the costly ones: only a config that passes them is ever used
to build the architecture (on the meta device), and a refused config builds nothing, however
large it claims to be. The names other modules read (file names, the config reader and schema
checks, the architecture's shapes and counts) are importable from here.
"""

from __future__ import annotations

from typing import Iterator, Mapping

import attrs

from kronos_registry.kronos.architecture import (
    Architecture,
    architecture,
    count_parameters,
    expected_tensors,
    implied_config,
    model_classes,
)
from kronos_registry.kronos.checks_config import (
    MAX_LISTED_KEYS,
    ConfigCheck,
    accepted_config,
    config_problems,
    read_config,
    schema_problems,
    valid_config,
)
from kronos_registry.kronos.checks_weights import (
    FLOAT_DTYPES,
    INT_DTYPES,
    TORCH_DTYPE_NAMES,
    KronosParams,
    KronosWeights,
    load_pickle_weights,
)
from kronos_registry.kronos.config import (
    BOOL_KEYS,
    CONFIG_FILE,
    FLOAT_KEYS,
    INFERENCE_NEUTRAL_KEYS,
    INT_KEYS,
    MAX_CONFIG_BYTES,
    MISSING_CONFIG_HINT,
    PROBABILITY_KEYS,
    SIZE_LIMITS,
    config_keys,
    detect_role,
)
from kronos_registry.kronos.locate import PICKLE_FILE, SAFETENSORS_FILE
from registry.checks import CheckContext, Problem, generic_checks
from registry.spec import Entry

# The tokenizer each published model was trained with, told apart by `group_size`
# (Tokenizer-2k: 5, Tokenizer-base: 4); the two are otherwise identical in shape.
PUBLISHED_TOKENIZER_GROUP_SIZE = {
    "NeoQuasar/Kronos-mini": (5, "Kronos-Tokenizer-2k"),
    "NeoQuasar/Kronos-small": (4, "Kronos-Tokenizer-base"),
    "NeoQuasar/Kronos-base": (4, "Kronos-Tokenizer-base"),
    "NeoQuasar/Kronos-large": (4, "Kronos-Tokenizer-base"),
}

MISSING_WEIGHTS_HINT = (
    f"Kronos weights are read from {SAFETENSORS_FILE}; if the source holds only legacy {PICKLE_FILE}, "
    f"convert it with safetensors.torch.save_file, or, if you trust it, set `allow_pickle: true` and "
    f"`files: [config.json, {PICKLE_FILE}]` on the entry"
)


@attrs.frozen
class KronosPairing:
    """A model and its tokenizer fit together: same s1/s2 bits, d_in 6, the trained-with tokenizer."""

    name: str = "kronos-pairing"

    def run(self, ctx: CheckContext) -> Iterator[Problem]:
        tokenizer_folder = ctx.related.get("tokenizer")
        if ctx.entry.kind != "model" or tokenizer_folder is None:
            return
        model_config = valid_config(ctx.folder, "model")
        tokenizer_config = valid_config(tokenizer_folder, "tokenizer")
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
    return [*generic, ConfigCheck(), KronosWeights(), KronosParams(), KronosPairing()]


__all__ = [
    # the checks
    "kronos_checks", "ConfigCheck", "KronosWeights", "KronosParams", "KronosPairing",
    "PUBLISHED_TOKENIZER_GROUP_SIZE", "MISSING_CONFIG_HINT", "MISSING_WEIGHTS_HINT",
    # files and reading
    "CONFIG_FILE", "SAFETENSORS_FILE", "PICKLE_FILE", "MAX_CONFIG_BYTES", "read_config", "load_pickle_weights",
    # the schema (config.py) and its problems
    "INT_KEYS", "PROBABILITY_KEYS", "FLOAT_KEYS", "BOOL_KEYS", "INFERENCE_NEUTRAL_KEYS", "SIZE_LIMITS",
    "MAX_LISTED_KEYS", "config_keys", "detect_role", "schema_problems", "config_problems", "accepted_config",
    "valid_config",
    # weights
    "FLOAT_DTYPES", "INT_DTYPES", "TORCH_DTYPE_NAMES",
    # the architecture (architecture.py)
    "Architecture", "architecture", "expected_tensors", "count_parameters", "implied_config", "model_classes",
]
