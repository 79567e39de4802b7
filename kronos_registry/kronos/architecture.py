"""The architecture a config describes, without its weights: tensor names, shapes, parameter count.

    architecture("model", config_items)   -> Architecture (built once per config, weights on meta)
    expected_tensors(role, config_items)  -> {state-dict name: shape}
    count_parameters(module)              -> its parameter count
    count_parameters(role, config)        -> the parameter count of the architecture the config builds
    implied_config(role, shapes)          -> the shape keys a checkpoint's tensors imply (nothing built)

The artifact checks compare a checkpoint with these; build only from a config ``check_config``
accepted, whose size limits keep the build under a few seconds. Importing this module costs
nothing: torch and the model classes load on the first build.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Mapping

import attrs


def model_classes() -> dict:
    """The class of each role."""
    from kronos_registry.kronos.model import Kronos
    from kronos_registry.kronos.tokenizer import KronosTokenizer

    return {"tokenizer": KronosTokenizer, "model": Kronos}


@attrs.frozen
class Architecture:
    """What the architecture built from a config holds: each state-dict tensor's shape and
    whether it is floating point, and the parameter count."""

    tensors: Mapping[str, tuple[tuple[int, ...], bool]]
    params: int


@lru_cache(maxsize=32)
def architecture(role: str, config_items: tuple) -> Architecture:
    """Build the role's module with its weights on the meta device (no memory). Call only with
    an accepted config (see ``check_config``): its size limits keep this under a few seconds."""
    from kronos_registry.kronos.checkpoint import build_shapes_only

    module = build_shapes_only(model_classes()[role], **dict(config_items))
    tensors = {name: (tuple(t.shape), t.is_floating_point()) for name, t in module.state_dict().items()}
    return Architecture(tensors=tensors, params=count_parameters(module))


def expected_tensors(role: str, config_items: tuple) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict, from the architecture built on the meta device."""
    return {name: shape for name, (shape, _) in architecture(role, config_items).tensors.items()}


def count_parameters(module_or_role, config: Mapping | None = None) -> int:
    """The parameters of a module (on any device, meta included), or, given a role and its
    config, of the architecture that config builds (on the meta device, cached)."""
    if isinstance(module_or_role, str):
        if config is None:
            raise TypeError("count_parameters(role, config) needs the config")
        return architecture(module_or_role, tuple(sorted(config.items()))).params
    return sum(p.numel() for p in module_or_role.parameters())


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


__all__ = ["model_classes", "Architecture", "architecture", "expected_tensors", "count_parameters",
           "implied_config"]
