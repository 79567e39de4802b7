"""Registry files (``models.yaml``) written from Python mappings.

    registry_yaml({"tok": tokenizer_keys("hf://Org/Tok@main")},
                  {"model": model_keys("hf://Org/Model@main", "tok")})
"""

from __future__ import annotations

from typing import Mapping

from tests.support.kronos_checkpoints import TINY_MODEL, TINY_TOKENIZER


def flow(mapping: Mapping) -> str:
    """A YAML flow mapping: {a: 1, b: true}."""
    def value(v):
        return str(v).lower() if isinstance(v, bool) else v
    return "{" + ", ".join(f"{k}: {value(v)}" for k, v in mapping.items()) + "}"


def registry_yaml(tokenizers: Mapping[str, Mapping], models: Mapping[str, Mapping],
                  mirrors: tuple[str, ...] = ()) -> str:
    """A registry file; each entry is a mapping of its keys (dict values become flow maps)."""
    def block(entries):
        lines = []
        for name, keys in entries.items():
            lines.append(f"  {name}:")
            lines += [f"    {k}: {flow(v) if isinstance(v, dict) else v}" for k, v in keys.items()]
        return lines
    lines = ["schema: 1"]
    if mirrors:
        lines += ["mirrors:"] + [f"  - {url}" for url in mirrors]
    lines += ["tokenizers:", *block(tokenizers), "models:", *block(models)]
    return "\n".join(lines) + "\n"


def tokenizer_keys(source: str, config: Mapping = TINY_TOKENIZER) -> dict:
    """A tokenizer entry's keys: its source and its config."""
    return {"source": source, "config": dict(config)}


def model_keys(source: str, tokenizer: str, config: Mapping = TINY_MODEL) -> dict:
    """A model entry's keys: its source, its tokenizer, a 64-candle context and its config."""
    return {"source": source, "tokenizer": tokenizer, "context_length": 64, "config": dict(config)}
