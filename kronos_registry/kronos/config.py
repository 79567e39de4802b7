"""Kronos configurations: the one schema and the one validator of a checkpoint's config.json.

A checkpoint's ``config.json`` holds exactly the constructor arguments of its class, and
``TokenizerConfig`` / ``KronosConfig`` below are those arguments (a test holds the
constructors' signatures to them). Everything that judges a config reads them:

    read_config_file(path)       -> dict, or ConfigFileError (size-capped, parsed, an object)
    check_config(config, role)   -> ConfigReport: missing, unknown and bad keys, the role they fit

``from_pretrained`` turns a report into one ``CheckpointError`` (checkpoint.py); the artifact
checks turn it into problems naming file, field and fix (checks.py). A report refuses sizes far
beyond any Kronos before anything is built from them. Plain Python: no torch, no registry.
"""

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

CONFIG_FILE = "config.json"
ROLES = ("tokenizer", "model")
CLASS_NAMES = {"tokenizer": "KronosTokenizer", "model": "Kronos"}


@dataclass
class TokenizerConfig:
    """Constructor arguments of KronosTokenizer == the keys of its config.json."""
    d_in: int
    d_model: int
    n_heads: int
    ff_dim: int
    n_enc_layers: int
    n_dec_layers: int
    ffn_dropout_p: float
    attn_dropout_p: float
    resid_dropout_p: float
    s1_bits: int
    s2_bits: int
    beta: float
    gamma0: float
    gamma: float
    zeta: float
    group_size: int


@dataclass
class KronosConfig:
    """Constructor arguments of Kronos == the keys of its config.json."""
    s1_bits: int
    s2_bits: int
    n_layers: int
    d_model: int
    n_heads: int
    ff_dim: int
    ffn_dropout_p: float
    attn_dropout_p: float
    resid_dropout_p: float
    token_dropout_p: float
    learn_te: bool


CONFIG_CLASSES = {"tokenizer": TokenizerConfig, "model": KronosConfig}

# The published configurations; handy for tests, benchmarks and checks.
PUBLISHED_CONFIGS: dict[str, dict[str, Any]] = {
    "kronos-tokenizer-base": dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4,
                                  n_dec_layers=4, ffn_dropout_p=0.0, attn_dropout_p=0.0,
                                  resid_dropout_p=0.0, s1_bits=10, s2_bits=10, beta=0.05,
                                  gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4),
    "kronos-tokenizer-2k": dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4,
                                n_dec_layers=4, ffn_dropout_p=0.0, attn_dropout_p=0.0,
                                resid_dropout_p=0.0, s1_bits=10, s2_bits=10, beta=0.05,
                                gamma0=1.0, gamma=1.1, zeta=0.05, group_size=5),
    "kronos-mini": dict(s1_bits=10, s2_bits=10, n_layers=4, d_model=256, n_heads=4, ff_dim=512,
                        ffn_dropout_p=0.2, attn_dropout_p=0.0, resid_dropout_p=0.2,
                        token_dropout_p=0.0, learn_te=True),
    "kronos-small": dict(s1_bits=10, s2_bits=10, n_layers=8, d_model=512, n_heads=8, ff_dim=1024,
                         ffn_dropout_p=0.25, attn_dropout_p=0.1, resid_dropout_p=0.25,
                         token_dropout_p=0.1, learn_te=True),
    "kronos-base": dict(s1_bits=10, s2_bits=10, n_layers=12, d_model=832, n_heads=16, ff_dim=2048,
                        ffn_dropout_p=0.2, attn_dropout_p=0.0, resid_dropout_p=0.2,
                        token_dropout_p=0.0, learn_te=True),
}


def config_fields(role: str) -> tuple[str, ...]:
    """The role's constructor arguments, in the constructor's order."""
    return tuple(f.name for f in dataclasses.fields(CONFIG_CLASSES[role]))


def config_keys(role: str) -> frozenset[str]:
    """Exactly the keys the role's config.json must hold."""
    return frozenset(config_fields(role))


def _keys_typed(kind: type) -> frozenset[str]:
    return frozenset(f.name for cls in CONFIG_CLASSES.values() for f in dataclasses.fields(cls) if f.type is kind)


# The type of every key, read from the dataclasses; the dropouts are probabilities.
INT_KEYS = _keys_typed(int)
BOOL_KEYS = _keys_typed(bool)
PROBABILITY_KEYS = frozenset({"ffn_dropout_p", "attn_dropout_p", "resid_dropout_p", "token_dropout_p"})
FLOAT_KEYS = _keys_typed(float) - PROBABILITY_KEYS

# Keys that do not change inference: a mismatch with a pinned config is only a warning.
INFERENCE_NEUTRAL_KEYS = PROBABILITY_KEYS | FLOAT_KEYS

# A Kronos config.json is a few hundred bytes; nothing larger is read, let alone parsed.
MAX_CONFIG_BYTES = 1 << 20
# Size sanity, checked before anything is built from a config: far beyond every published
# Kronos (12 layers, d_model 832, 10+10 bits), yet bounded, so that building the architecture
# on the meta device stays under a few seconds.
SIZE_LIMITS = {
    "n_layers": 256, "n_enc_layers": 256, "n_dec_layers": 256, "d_model": 65536, "ff_dim": 262144,
    "n_heads": 1024, "d_in": 1024, "s1_bits": 20, "s2_bits": 20, "group_size": 40,
}
# The dependency-aware layer of Kronos has 4 heads whatever n_heads is (as published).
DEPENDENCY_HEADS = 4

MISSING_CONFIG_HINT = (
    "a Kronos checkpoint folder holds config.json (the constructor arguments) beside "
    "model.safetensors; save it with save_pretrained(), or copy config.json from the hub repo"
)
_RESTORE_HINT = "restore config.json from the source repo"


# --------------------------------------------------------------------------- reading


class ConfigFileError(ValueError):
    """config.json is missing, too large, not JSON or not an object; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message, self.hint = message, hint


def read_config_file(path: Path) -> dict:
    """The JSON object in ``path`` (a config.json), read only up to MAX_CONFIG_BYTES."""
    path = Path(path)
    if not path.is_file():
        raise ConfigFileError(f"{CONFIG_FILE} is missing", MISSING_CONFIG_HINT)
    with open(path, "rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigFileError(
            f"{CONFIG_FILE} is {path.stat().st_size:,} bytes; a Kronos config is a few hundred "
            f"(at most {MAX_CONFIG_BYTES:,} are read)",
            "restore config.json from the source repo: it holds only the constructor arguments")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigFileError(f"{CONFIG_FILE} is not valid JSON ({exc})", _RESTORE_HINT) from None
    except RecursionError:
        raise ConfigFileError(f"{CONFIG_FILE} nests too deeply to be a Kronos config", _RESTORE_HINT) from None
    if not isinstance(config, dict):
        raise ConfigFileError(f"{CONFIG_FILE} holds a {type(config).__name__}, not a JSON object",
                              "config.json must map argument names to values")
    return config


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class BadValue:
    """One key whose value no constructor could use (or a combination of keys, named by one)."""
    key: str
    message: str
    hint: str


@dataclass(frozen=True)
class ConfigReport:
    """What ``check_config`` found. ``missing`` is in constructor order, ``unknown`` sorted;
    ``detected`` is the role the keys fit best (None when neither fits at all)."""
    role: str
    detected: str | None
    missing: tuple[str, ...]
    unknown: tuple[str, ...]
    bad: tuple[BadValue, ...]

    @property
    def swapped(self) -> bool:
        """The keys are the other role's: a tokenizer given as a model, or the reverse."""
        return self.detected is not None and self.detected != self.role

    @property
    def ok(self) -> bool:
        return not (self.swapped or self.missing or self.unknown or self.bad)


def other_role(role: str) -> str:
    return "model" if role == "tokenizer" else "tokenizer"


def detect_role(config: Mapping) -> str | None:
    """Which role's constructor the keys fit best: counted on the keys only one role has."""
    shared = config_keys("model") & config_keys("tokenizer")
    keys = set(config)
    scores = {role: len(keys & config_keys(role) - shared) for role in ROLES}
    best = max(scores, key=scores.get)
    return best if scores[best] else None


def check_config(config: Mapping, role: str) -> ConfigReport:
    """Missing, unknown, mistyped and impossible keys of ``config`` for the role's constructor."""
    fields = config_fields(role)
    bad = [BadValue(key, f"{key} = {short_repr(config[key])} {why}", f"fix {key} in {CONFIG_FILE}")
           for key in sorted(set(fields) & set(config)) if (why := value_problem(key, config[key]))]
    return ConfigReport(
        role=role, detected=detect_role(config),
        missing=tuple(k for k in fields if k not in config),
        unknown=tuple(sorted(k for k in config if k not in fields)),
        bad=(*bad, *_impossible_combinations(config, role)),
    )


def value_problem(key: str, value: object) -> str | None:
    """Why ``value`` cannot be ``key`` (the end of a sentence), or None when it can."""
    if key in BOOL_KEYS:
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number"
    if key in INT_KEYS:
        if isinstance(value, float):
            # the constructors size tensors and ranges with it: 2.0 would fail there
            return "must be a whole number" if not value.is_integer() else "must be an integer, not a float"
        if value <= 0:
            return "must be positive"
        if key in SIZE_LIMITS and value > SIZE_LIMITS[key]:
            return (f"is beyond any Kronos (at most {SIZE_LIMITS[key]:,}); "
                    "refused before anything is built from it")
    if key in PROBABILITY_KEYS and not 0 <= value < 1:
        return "must be a probability in [0, 1)"
    if key in FLOAT_KEYS and isinstance(value, float) and not math.isfinite(value):
        return "must be finite"
    return None


def _impossible_combinations(config: Mapping, role: str) -> list[BadValue]:
    found = []
    d_model, n_heads = config.get("d_model"), config.get("n_heads")
    if _positive_ints(d_model, n_heads) and d_model % n_heads:
        found.append(BadValue("n_heads", f"d_model {d_model} is not divisible by n_heads {n_heads}",
                              "choose n_heads that divides d_model"))
    if role == "model" and _positive_ints(d_model) and d_model % DEPENDENCY_HEADS:
        found.append(BadValue("d_model", f"d_model {d_model} is not divisible by {DEPENDENCY_HEADS}, the heads "
                              "of the dependency-aware layer", f"choose a d_model divisible by {DEPENDENCY_HEADS}"))
    if role == "tokenizer":
        s1, s2, group = config.get("s1_bits"), config.get("s2_bits"), config.get("group_size")
        if _positive_ints(s1, s2, group) and (s1 + s2) % group:
            found.append(BadValue("group_size", f"s1_bits + s2_bits = {s1 + s2} is not divisible by group_size "
                                  f"{group}", "choose a group_size that divides it"))
    return found


def _positive_ints(*values) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def short_repr(value: object, limit: int = 40) -> str:
    """repr(value), cut short: a config value shown in a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


__all__ = ["CONFIG_FILE", "CLASS_NAMES", "CONFIG_CLASSES", "PUBLISHED_CONFIGS", "TokenizerConfig", "KronosConfig",
           "ConfigFileError", "ConfigReport", "BadValue", "read_config_file", "check_config", "detect_role",
           "config_keys", "config_fields", "value_problem"]
