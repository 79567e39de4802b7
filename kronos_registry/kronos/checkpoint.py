"""Checkpoints: ``save_pretrained`` / ``from_pretrained`` over the hub layout, with clear errors.

``PretrainedMixin`` gives KronosTokenizer and Kronos the official methods:

    from_pretrained(folder_or_hub_id)   locate the files (locate.py: a folder, or a hub id through
                                        the registry's resolver) -> check config.json (config.py)
                                        -> build without initialising -> adopt the file's tensors
    save_pretrained(folder)             config.json (the constructor arguments) + model.safetensors

Every failure is one ``CheckpointError`` naming the checkpoint, the missing or unknown fields
and the fix: never the constructor's "missing 16 required positional arguments". This module
loads a local folder itself and never talks to a hub: a hub id is the resolver's business
(see locate.py for why). Building skips the random initialisation (``SkipInit``), so loading
Kronos-base costs the read of its weights and little more.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import torch.nn as nn

from kronos_registry.kronos.config import (
    CLASS_NAMES,
    CONFIG_FILE,
    ConfigFileError,
    check_config,
    config_fields,
    other_role,
    read_config_file,
)
from kronos_registry.kronos.layers import BSQ, Rotary
from kronos_registry.kronos.locate import SAFETENSORS_FILE, CheckpointError, locate_checkpoint

# Buffers computed from the config, not learnt: a checkpoint may leave them out.
DERIVED_BUFFERS = ("rotary.inv_freq", "bsq.basis", "bsq.group_basis")


class SkipInit(torch.overrides.TorchFunctionMode):
    """Within it, weight initialisation is a no-op (this thread only).

    ``torch.nn.init`` functions and the in-place fills they use return their tensor
    unchanged, so ``nn.Linear``/``nn.Embedding`` keep the uninitialised memory of
    ``torch.empty`` (never touched, hence nearly free even for 400 MB of weights).
    Everything else runs as usual, so deterministic buffers (rotary frequencies, code
    bases) are computed for real. This replaces building on the meta device, whose first
    random fill imports ``torch._dynamo`` (about a second) in the load path.
    """

    _FILLS = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.zero_, torch.Tensor.fill_})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self._FILLS or getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **(kwargs or {}))


class WeightsOnMeta(torch.overrides.TorchFunctionMode):
    """Within it (with ``SkipInit``), weights are allocated on the meta device: ``torch.empty``
    without a device, which is how ``nn.Linear``/``nn.Embedding`` allocate them, goes to meta.
    Everything else (the small deterministic buffers) is computed on the CPU as usual, since
    arithmetic on meta tensors runs through torch's reference decompositions, whose first use
    imports ``torch._dynamo`` (about a second)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.empty and kwargs.get("device") is None:
            kwargs = {**kwargs, "device": "meta"}
        return func(*args, **kwargs)


def build_shapes_only(cls, **config):
    """The module for ``config`` with its weights on the meta device (no memory, no
    initialisation): for names, shapes and parameter counts, never for computing."""
    with WeightsOnMeta(), SkipInit():
        return cls(**config)


class PretrainedMixin:
    """from_pretrained / save_pretrained over `config.json` + `model.safetensors`.

    A class using it sets ``role`` ("model" or "tokenizer") and ``config_class`` (its
    dataclass in config.py), and keeps ``self.config``, an instance of it.
    """

    role: str
    config_class: type

    # ---- writing

    def save_pretrained(self, save_directory, *, push_to_hub: bool = False, **_ignored) -> Path:
        """Write config.json (the constructor arguments) and model.safetensors."""
        from safetensors.torch import save_file

        if push_to_hub:
            raise NotImplementedError("save locally, then upload with huggingface_hub.upload_folder")

        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(self.config), indent=2, sort_keys=True) + "\n")
        tensors = {}
        for k, v in self.state_dict().items():
            v = v.detach().to("cpu")
            # views into a fused buffer (see fused_weights) share storage: safetensors wants owners
            if v.untyped_storage().nbytes() != v.numel() * v.element_size() or not v.is_contiguous():
                v = v.contiguous().clone()
            tensors[k] = v
        save_file(tensors, str(folder / SAFETENSORS_FILE), metadata={"format": "pt"})
        return folder

    # ---- reading

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, revision: str | None = None,
                        cache_dir=None, force_download: bool = False, token=None,
                        local_files_only: bool = False, map_location="cpu", strict: bool = True,
                        **config_overrides):
        """Build from a folder or hub repo holding config.json + model.safetensors.

        A hub id (``ORG/REPO``) goes through the registry (see locate.py): its pins and
        verified store, offline mode, HF_ENDPOINT and mirrors; ``cache_dir`` is then the
        store's folder. Every key and shape must match; only the deterministic buffers
        (rotary frequencies, code bases) may be absent from the file.
        """
        from safetensors.torch import load_file

        files = locate_checkpoint(pretrained_model_name_or_path, cls.role, revision=revision, cache_dir=cache_dir,
                                  force_download=force_download, token=token, local_files_only=local_files_only)
        label = files.label
        cfg = cls._config_from(label, files.config, config_overrides)
        if files.weights is None:
            raise CheckpointError(f"{label} has no {SAFETENSORS_FILE}", folder=label, missing=[SAFETENSORS_FILE],
                                  hint="download the complete checkpoint; pickled pytorch_model.bin files "
                                       "are not loaded")
        module = cls.uninitialised(**cfg)
        try:
            state = load_file(str(files.weights), device=str(map_location))
        except Exception as e:
            raise CheckpointError(f"{label}: cannot read {SAFETENSORS_FILE} ({e})", folder=label,
                                  hint="re-download the checkpoint") from e
        module.load_weights(state, label=label, strict=strict)
        return module.eval()

    @classmethod
    def _config_from(cls, label: str, cfg_path: Path | None, overrides: dict | None = None) -> dict:
        """Read and check config.json (with ``overrides`` on top); every problem becomes one CheckpointError."""
        name, keys = CLASS_NAMES[cls.role], ", ".join(config_fields(cls.role))
        if cfg_path is None and not overrides:
            raise CheckpointError(
                f"{label} has no {CONFIG_FILE}, so the {name} cannot be built", folder=label, missing=[CONFIG_FILE],
                hint=f"download the complete checkpoint (it has {CONFIG_FILE} and {SAFETENSORS_FILE}), "
                     f"or write {CONFIG_FILE} with the constructor arguments: {keys}")
        cfg: dict = {}
        if cfg_path is not None:
            try:
                cfg = read_config_file(cfg_path)
            except ConfigFileError as e:
                raise CheckpointError(f"{label}: {e.message}", folder=label, hint=e.hint) from None
        cfg = {**cfg, **(overrides or {})}
        cfg.pop("config", None)  # some hub mixins nest nothing useful here
        report = check_config(cfg, cls.role)
        if report.ok:
            return cfg
        if report.swapped:
            other = CLASS_NAMES[other_role(cls.role)]
            raise CheckpointError(
                f"{label} holds a {other} checkpoint, not a {name}", folder=label,
                missing=report.missing, unknown=report.unknown,
                hint=f"load it with {other}.from_pretrained, and pass the {cls.role} folder here")
        parts = []
        if report.missing:
            parts.append(f"missing fields: {', '.join(report.missing)}")
        if report.unknown:
            parts.append(f"unknown fields: {', '.join(report.unknown)}")
        if report.bad:
            parts.append(f"invalid values: {'; '.join(b.message for b in report.bad)}")
        raise CheckpointError(f"{label}: {CONFIG_FILE} is not a {name} config ({'; '.join(parts)})",
                              folder=label, missing=report.missing, unknown=report.unknown,
                              hint=f"a {name} {CONFIG_FILE} has exactly these keys: {keys}")

    @classmethod
    def uninitialised(cls, **config):
        """The module for ``config`` with uninitialised weights, to be filled by load_weights.

        No random initialisation and no meta device: building Kronos-base takes ~0.05 s,
        and load_weights then adopts the loaded tensors themselves (no second copy).
        """
        with SkipInit():
            module = cls(**config)
        module._awaiting_weights = True
        return module

    def load_weights(self, state: dict, *, label: str = "<state dict>", strict: bool = True):
        """load_state_dict with clear errors; materialises a meta-built module and fills
        an ``uninitialised`` one with the given tensors (cast to the module's dtypes)."""
        expected = self.state_dict()
        derived = {k for k in expected if k.endswith(DERIVED_BUFFERS)}
        missing = [k for k in expected if k not in state and k not in derived]
        unknown = sorted(k for k in state if k not in expected)
        shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
        if shapes or missing or (strict and unknown):
            detail = "; ".join(filter(None, [
                shapes and "shape mismatch: " + ", ".join(shapes[:5]),
                missing and f"{len(missing)} missing tensors (e.g. {', '.join(missing[:3])})",
                unknown and f"{len(unknown)} unexpected tensors (e.g. {', '.join(unknown[:3])})"]))
            raise CheckpointError(f"{label}: weights do not fit this {type(self).__name__} config: {detail}",
                                  folder=label, missing=missing, unknown=unknown,
                                  hint="the config.json and model.safetensors come from different checkpoints; "
                                       "re-download it")
        device = next(iter(state.values())).device if state else torch.device("cpu")
        if any(p.is_meta for p in self.parameters()) or any(b.is_meta for b in self.buffers()):
            # recompute the derived buffers on the real device, then take the file's tensors
            fresh = {}
            for k in derived:
                fresh[k] = _derived_buffer(self, k, device)
            self.to_empty(device=device)
            for k, v in fresh.items():
                self.get_buffer(k).copy_(v)
            for m in self.modules():
                if isinstance(m, Rotary):
                    m._tables = None
        if self.__dict__.pop("_awaiting_weights", False):
            # Adopt the loaded tensors (the uninitialised ones are dropped): one copy in memory.
            adopted = {k: v if v.dtype == expected[k].dtype else v.to(expected[k].dtype)
                       for k, v in state.items() if k in expected}
            self.load_state_dict(adopted, strict=False, assign=True)
            return self.to(device)  # the derived buffers were computed on the CPU
        self.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
        return self


def _derived_buffer(model: nn.Module, key: str, device) -> torch.Tensor:
    """The value of the derived buffer ``key``, computed as its module computes it."""
    path, _, name = key.rpartition(".")
    owner = model.get_submodule(path)
    if isinstance(owner, Rotary):
        return Rotary.frequencies(owner.inv_freq.shape[0] * 2, device)
    return BSQ.place_values(owner.dim if name == "basis" else owner.group_size, device)


__all__ = ["PretrainedMixin", "CheckpointError", "SkipInit", "WeightsOnMeta", "build_shapes_only", "DERIVED_BUFFERS"]
