"""The Kronos architecture: a candlestick tokenizer and a decoder-only transformer.

Written from the paper (arXiv 2508.02739) and from the shapes of the published
checkpoints; the module tree mirrors the official one so that `state_dict` keys and
shapes are identical and the hub's `config.json` + `model.safetensors` load unchanged.

    KronosTokenizer   (B, T, 6) candles  <->  two integer streams s1, s2 of (B, T)
    Kronos            (s1, s2, time stamps) -> logits of the next s1, then of s2 given s1

This file only imports torch (+ safetensors, and huggingface_hub lazily for hub ids).
Generation with a key/value cache lives in `generate.py`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


# --------------------------------------------------------------------------- errors


class CheckpointError(ValueError):
    """A checkpoint folder or hub repo that cannot be turned into a module.

    `folder` names where we looked, `missing` / `unknown` list the offending config
    fields (or files), `hint` says what to do about it.
    """

    def __init__(self, message: str, *, folder: str | os.PathLike | None = None,
                 missing: Iterable[str] = (), unknown: Iterable[str] = (), hint: str = ""):
        self.folder = str(folder) if folder is not None else None
        self.missing = list(missing)
        self.unknown = list(unknown)
        self.hint = hint
        text = message
        if self.folder is not None and self.folder not in text:
            text = f"{text} (checkpoint: {self.folder})"
        if hint:
            text = f"{text}\nhint: {hint}"
        super().__init__(text)


# --------------------------------------------------------------------------- configs


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


# The published configurations (DESIGN.md); handy for tests, benchmarks and checks.
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


def _field_types(cfg_cls) -> dict[str, type]:
    return {f.name: f.type for f in dataclasses.fields(cfg_cls)}


# --------------------------------------------------------------------------- building blocks


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # x * rsqrt(mean(x^2) + eps) * weight, computed in float32 like the checkpoints expect
        return F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).type_as(x) * self.weight


class Rotary(nn.Module):
    """Rotary position embedding on the two halves of each head (GPT-NeoX layout).

    inv_freq is a persistent buffer because the official checkpoints carry it.
    """

    def __init__(self, head_dim: int):
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq)
        self._tables: tuple[int, torch.device, torch.Tensor, torch.Tensor] | None = None

    def tables(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of shape (n, head_dim) for positions 0..n-1."""
        t = self._tables
        if t is None or t[0] < n or t[1] != torch.device(device) or t[2].dtype != self.inv_freq.dtype:
            # ordinary tensors even when first asked for under inference_mode, so that a
            # model used for forecasting can still be trained afterwards
            with torch.inference_mode(False), torch.no_grad():
                pos = torch.arange(n, device=device).type_as(self.inv_freq)
                freqs = torch.outer(pos, self.inv_freq.to(device))   # (n, head_dim/2)
                emb = torch.cat((freqs, freqs), dim=-1)               # (n, head_dim)
                t = (n, torch.device(device), emb.cos(), emb.sin())
            self._tables = t
        return t[2][:n], t[3][:n]

    @staticmethod
    def rotate(x, cos, sin):
        """x: (..., T, head_dim), cos/sin: (T, head_dim)."""
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def _bool_key_mask(key_padding_mask, n_heads: int, q_len: int):
    """(B, K) mask (True = may attend) -> (B, H, Q, K) as SDPA wants it."""
    m = key_padding_mask.bool()[:, None, None, :]
    return m.expand(-1, n_heads, q_len, -1)


class Attention(nn.Module):
    """Multi-head attention with rotary positions. Self-attention (causal) in the blocks,
    cross-attention (non-causal at inference) in the dependency-aware layer."""

    def __init__(self, d_model: int, n_heads: int, attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.0):
        super().__init__()
        assert d_model % n_heads == 0, "d_model must be divisible by n_heads"
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rotary = Rotary(self.head_dim)
        self.attn_dropout_p = attn_dropout_p
        self.resid_dropout = nn.Dropout(resid_dropout_p)

    def _heads(self, x):  # (B, T, d) -> (B, H, T, hd)
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, query, key=None, value=None, key_padding_mask=None, causal: bool = True):
        key = query if key is None else key
        value = key if value is None else value
        B, Tq, _ = query.shape
        q = self._heads(self.q_proj(query))
        k = self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(value))
        # The tables are built for the *query* length and applied to q and k alike (the
        # checkpoints were trained this way). For a 1-token query that is position 0 only:
        # no rotation at all, which is what the dependency-aware layer sees at inference.
        cos, sin = self.rotary.tables(Tq, q.device)
        q, k = Rotary.rotate(q, cos, sin), Rotary.rotate(k, cos, sin)
        mask = None
        if key_padding_mask is not None:
            mask = _bool_key_mask(key_padding_mask, self.n_heads, Tq)
            if causal:  # SDPA refuses a mask together with is_causal: fold causality in
                tri = torch.ones(Tq, k.shape[-2], dtype=torch.bool, device=q.device).tril()
                mask = mask & tri
                causal = False
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal,
            dropout_p=self.attn_dropout_p if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, Tq, self.d_model)
        return self.resid_dropout(self.out_proj(y))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, d_model: int, ff_dim: int, dropout_p: float = 0.0):
        super().__init__()
        self.w1 = nn.Linear(d_model, ff_dim, bias=False)
        self.w3 = nn.Linear(d_model, ff_dim, bias=False)
        self.w2 = nn.Linear(ff_dim, d_model, bias=False)
        self.ffn_dropout = nn.Dropout(dropout_p)

    def forward(self, x):
        return self.ffn_dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, d_model, n_heads, ff_dim, ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0):
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.self_attn = Attention(d_model, n_heads, attn_dropout_p, resid_dropout_p)
        self.norm2 = RMSNorm(d_model)
        self.ffn = FeedForward(d_model, ff_dim, ffn_dropout_p)

    def forward(self, x, key_padding_mask=None):
        x = x + self.self_attn(self.norm1(x), key_padding_mask=key_padding_mask, causal=True)
        return x + self.ffn(self.norm2(x))


# --------------------------------------------------------------------------- checkpoints


def _role_of(keys: set[str]) -> type | None:
    for cls in (KronosTokenizer, Kronos):
        names = set(_field_types(cls.config_class))
        if len(keys & names) >= len(names) - 2 and not (keys - names - {"config"}):
            return cls
    return None


def _check_type(name: str, value: Any, typ: str) -> str | None:
    if typ in ("int", int):
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        return None if ok else f"{name}={value!r} (want a positive integer)"
    if typ in ("float", float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"{name}={value!r} (want a number)"
    if typ in ("bool", bool):
        return None if isinstance(value, bool) else f"{name}={value!r} (want true/false)"
    return None


def config_problems(cls, cfg: dict) -> tuple[list[str], list[str], list[str]]:
    """(missing, unknown, bad) keys of a config dict for `cls` (KronosTokenizer or Kronos)."""
    types = _field_types(cls.config_class)
    missing = [k for k in types if k not in cfg]
    unknown = sorted(k for k in cfg if k not in types)
    bad = [p for k, t in types.items() if k in cfg and (p := _check_type(k, cfg[k], t))]
    if not bad and not missing:
        d, h = cfg["d_model"], cfg["n_heads"]
        if d % h:
            bad.append(f"d_model={d} is not divisible by n_heads={h}")
        if cls is Kronos and d % 4:
            bad.append(f"d_model={d} is not divisible by 4 (the dependency layer's heads)")
        if cls is KronosTokenizer and (cfg["s1_bits"] + cfg["s2_bits"]) % cfg["group_size"]:
            bad.append(f"s1_bits + s2_bits = {cfg['s1_bits'] + cfg['s2_bits']} is not divisible by "
                       f"group_size={cfg['group_size']}")
    return missing, unknown, bad


def _is_hub_id(name: str) -> bool:
    parts = name.split("/")
    return (len(parts) == 2 and all(parts) and not name.startswith((".", "~"))
            and not os.path.isabs(name) and "\\" not in name)


class _SkipInit(torch.overrides.TorchFunctionMode):
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


class _WeightsOnMeta(torch.overrides.TorchFunctionMode):
    """Within it (with ``_SkipInit``), weights are allocated on the meta device: ``torch.empty``
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
    with _WeightsOnMeta(), _SkipInit():
        return cls(**config)


class _HubMixin:
    """from_pretrained / save_pretrained over `config.json` + `model.safetensors`."""

    config_class: type

    # ---- writing

    def save_pretrained(self, save_directory, *, push_to_hub: bool = False, **_ignored) -> Path:
        """Write config.json (the constructor arguments) and model.safetensors."""
        from safetensors.torch import save_file

        if push_to_hub:
            raise NotImplementedError("save locally, then upload with huggingface_hub.upload_folder")

        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(self.config), indent=2, sort_keys=True) + "\n")
        tensors = {}
        for k, v in self.state_dict().items():
            v = v.detach().to("cpu")
            # views into a fused buffer (see fused_weights) share storage: safetensors wants owners
            if v.untyped_storage().nbytes() != v.numel() * v.element_size() or not v.is_contiguous():
                v = v.contiguous().clone()
            tensors[k] = v
        save_file(tensors, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        return folder

    # ---- reading

    @classmethod
    def _resolve(cls, name, revision, cache_dir, force_download, token, local_files_only):
        """-> (label, path of config.json or None, path of model.safetensors or None)."""
        path = Path(os.fspath(name)).expanduser()
        if path.is_dir():
            cfg, w = path / CONFIG_NAME, path / WEIGHTS_NAME
            return str(path), (cfg if cfg.is_file() else None), (w if w.is_file() else None)
        if path.exists():
            raise CheckpointError(f"{path} is a file, not a checkpoint folder", folder=path,
                                  hint=f"pass the folder that holds {CONFIG_NAME} and {WEIGHTS_NAME}")
        if not _is_hub_id(str(name)):
            raise CheckpointError(f"checkpoint folder {path} does not exist", folder=path,
                                  missing=[CONFIG_NAME, WEIGHTS_NAME],
                                  hint="check the path, or pass a hub repo id such as NeoQuasar/Kronos-small")
        label = f"{name}@{revision}" if revision else str(name)
        try:
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
        except ImportError as e:  # pragma: no cover - huggingface_hub is a dependency
            raise CheckpointError(f"cannot fetch {label}: huggingface_hub is not installed", folder=label) from e

        def fetch(filename):
            try:
                return Path(hf_hub_download(str(name), filename, revision=revision, cache_dir=cache_dir,
                                            force_download=force_download, token=token,
                                            local_files_only=local_files_only))
            except LocalEntryNotFoundError as e:  # offline, or the hub unreachable, and not cached
                raise CheckpointError(
                    f"{filename} of hub repo {label} is not in the local cache and the hub was not reachable",
                    folder=label, missing=[filename],
                    hint="connect (HF_ENDPOINT for a mirror) and retry, sync it with `kronos-registry sync`, "
                         "or pass a local checkpoint folder") from e
            except EntryNotFoundError:  # the repo exists but has no such file
                return None
            except Exception as e:
                raise CheckpointError(
                    f"cannot fetch {filename} of hub repo {label}: {type(e).__name__}: {e}", folder=label,
                    hint="check the repo id and revision and your network (HF_ENDPOINT for a mirror); offline, "
                         "sync it first with `kronos-registry sync` or pass a local folder") from e

        cfg = fetch(CONFIG_NAME)
        return label, cfg, (fetch(WEIGHTS_NAME) if cfg is not None else None)

    @classmethod
    def read_config(cls, label: str, cfg_path: Path | None, overrides: dict | None = None) -> dict:
        """Parse and validate config.json; every problem becomes one CheckpointError."""
        other = Kronos if cls is KronosTokenizer else KronosTokenizer
        if cfg_path is None and not overrides:
            raise CheckpointError(
                f"{label} has no {CONFIG_NAME}, so the {cls.__name__} cannot be built", folder=label,
                missing=[CONFIG_NAME],
                hint=f"download the complete checkpoint (it has {CONFIG_NAME} and {WEIGHTS_NAME}), "
                     f"or write {CONFIG_NAME} with the constructor arguments: {', '.join(_field_types(cls.config_class))}")
        cfg: dict = {}
        if cfg_path is not None:
            try:
                cfg = json.loads(Path(cfg_path).read_text())
            except (OSError, ValueError) as e:
                raise CheckpointError(f"{label}: {CONFIG_NAME} is not valid JSON ({e})", folder=label,
                                      hint="re-download the checkpoint") from e
            if not isinstance(cfg, dict):
                raise CheckpointError(f"{label}: {CONFIG_NAME} is not a JSON object", folder=label,
                                      hint="re-download the checkpoint")
        cfg = {**cfg, **(overrides or {})}
        cfg.pop("config", None)  # some hub mixins nest nothing useful here
        missing, unknown, bad = config_problems(cls, cfg)
        if not (missing or unknown or bad):
            return cfg
        if _role_of(set(cfg)) is other:
            raise CheckpointError(
                f"{label} holds a {other.__name__} checkpoint, not a {cls.__name__}", folder=label,
                missing=missing, unknown=unknown,
                hint=f"load it with {other.__name__}.from_pretrained, and pass the "
                     f"{'model' if cls is Kronos else 'tokenizer'} folder here")
        parts = []
        if missing:
            parts.append(f"missing fields: {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown fields: {', '.join(unknown)}")
        if bad:
            parts.append(f"invalid values: {'; '.join(bad)}")
        raise CheckpointError(f"{label}: {CONFIG_NAME} is not a {cls.__name__} config ({'; '.join(parts)})",
                              folder=label, missing=missing, unknown=unknown,
                              hint=f"a {cls.__name__} {CONFIG_NAME} has exactly these keys: "
                                   f"{', '.join(_field_types(cls.config_class))}")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, revision: str | None = None,
                        cache_dir=None, force_download: bool = False, token=None,
                        local_files_only: bool = False, map_location="cpu", strict: bool = True,
                        **config_overrides):
        """Build from a folder or hub repo holding config.json + model.safetensors.

        Every key and shape must match; only the deterministic buffers (rotary
        frequencies, code bases) may be absent from the file.
        """
        from safetensors.torch import load_file

        label, cfg_path, w_path = cls._resolve(pretrained_model_name_or_path, revision, cache_dir,
                                               force_download, token, local_files_only)
        cfg = cls.read_config(label, cfg_path, config_overrides)
        if w_path is None:
            raise CheckpointError(f"{label} has no {WEIGHTS_NAME}", folder=label, missing=[WEIGHTS_NAME],
                                  hint="download the complete checkpoint; pickled pytorch_model.bin files "
                                       "are not loaded")
        module = cls.uninitialised(**cfg)
        try:
            state = load_file(str(w_path), device=str(map_location))
        except Exception as e:
            raise CheckpointError(f"{label}: cannot read {WEIGHTS_NAME} ({e})", folder=label,
                                  hint="re-download the checkpoint") from e
        module.load_weights(state, label=label, strict=strict)
        return module.eval()

    @classmethod
    def uninitialised(cls, **config):
        """The module for ``config`` with uninitialised weights, to be filled by load_weights.

        No random initialisation and no meta device: building Kronos-base takes ~0.05 s,
        and load_weights then adopts the loaded tensors themselves (no second copy).
        """
        with _SkipInit():
            module = cls(**config)
        module._awaiting_weights = True
        return module

    def load_weights(self, state: dict, *, label: str = "<state dict>", strict: bool = True):
        """load_state_dict with clear errors; materialises a meta-built module and fills
        an ``uninitialised`` one with the given tensors (cast to the module's dtypes)."""
        expected = self.state_dict()
        derived = {k for k in expected if k.endswith(("rotary.inv_freq", "bsq.basis", "bsq.group_basis"))}
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
                _get(self, k).copy_(v)
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


def _get(module: nn.Module, dotted: str) -> torch.Tensor:
    *path, name = dotted.split(".")
    for p in path:
        module = getattr(module, p)
    return getattr(module, name)


def _derived_buffer(model: nn.Module, key: str, device) -> torch.Tensor:
    *path, name = key.split(".")
    owner = model
    for p in path:
        owner = getattr(owner, p)
    if isinstance(owner, Rotary):
        dim = owner.inv_freq.shape[0] * 2
        return 1.0 / (10000 ** (torch.arange(0, dim, 2, device=device).float() / dim))
    n = owner.dim if name == "basis" else owner.group_size
    return 2 ** torch.arange(n - 1, -1, -1, device=device)



# --------------------------------------------------------------------------- tokenizer


class _BSQ(nn.Module):
    """Binary spherical quantisation (arXiv 2406.07548): a code is the sign pattern of the
    L2-normalised vector, scaled back onto the sphere by 1/sqrt(dim)."""

    def __init__(self, dim: int, beta: float, gamma0: float, gamma: float, zeta: float, group_size: int):
        super().__init__()
        assert dim % group_size == 0, "s1_bits + s2_bits must be divisible by group_size"
        self.dim, self.group_size = dim, group_size
        self.beta, self.gamma0, self.gamma, self.zeta = beta, gamma0, gamma, zeta
        # Persistent buffers: the official checkpoints carry them (int64, MSB first).
        self.register_buffer("basis", 2 ** torch.arange(dim - 1, -1, -1))
        self.register_buffer("group_basis", 2 ** torch.arange(group_size - 1, -1, -1))

    def quantize(self, z):
        """Sign with a straight-through gradient, then onto the sphere."""
        zhat = torch.where(z > 0, torch.ones((), dtype=z.dtype, device=z.device),
                           -torch.ones((), dtype=z.dtype, device=z.device))
        return (z + (zhat - z).detach()) * (1.0 / self.dim ** 0.5)

    def loss(self, z, zq):
        """Commitment + entropy penalty, the training objective of the tokenizer.

        Per-sample entropy is the analytical per-bit entropy; the codebook entropy is
        taken over the batch-averaged per-bit probabilities (what the checkpoints used).
        """
        p = torch.sigmoid(-4 * z / self.dim ** 0.5)
        prob = torch.stack([p, 1 - p], dim=-1)                           # (..., dim, 2)
        per_sample = -(prob * torch.log(prob + 1e-8)).sum(-1).sum(-1).mean()
        avg = prob.reshape(-1, self.dim, 2).mean(0)                      # (dim, 2)
        codebook = -(avg * torch.log(avg + 1e-8)).sum(-1).sum()
        commit = self.beta * torch.mean(((zq.detach() - z) ** 2).sum(dim=-1))
        return commit + self.zeta * (self.gamma0 * per_sample - self.gamma * codebook)


class _Quantizer(nn.Module):
    def __init__(self, s1_bits, s2_bits, beta, gamma0, gamma, zeta, group_size):
        super().__init__()
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.codebook_dim = s1_bits + s2_bits
        self.bsq = _BSQ(self.codebook_dim, beta, gamma0, gamma, zeta, group_size)

    @staticmethod
    def bits_to_indices(bits):
        """(..., n) signed code -> integer, bit j worth 2**j (LSB first)."""
        weights = 2 ** torch.arange(bits.shape[-1], dtype=torch.long, device=bits.device)
        return ((bits >= 0).long() * weights).sum(-1)

    def forward(self, z, half=False, with_loss=True):
        z = F.normalize(z, dim=-1)
        zq = self.bsq.quantize(z)
        loss = self.bsq.loss(z, zq) if with_loss else zq.new_zeros(())
        if half:
            idx = [self.bits_to_indices(zq[..., :self.s1_bits]), self.bits_to_indices(zq[..., self.s1_bits:])]
        else:
            idx = self.bits_to_indices(zq)
        return loss, zq, idx


class KronosTokenizer(_HubMixin, nn.Module):
    """Candles (B, T, d_in) -> hierarchical tokens (s1 coarse, s2 fine) and back.

    Encoder and decoder are causal transformer stacks of (n_layers - 1) blocks each.
    """

    config_class = TokenizerConfig

    def __init__(self, d_in, d_model, n_heads, ff_dim, n_enc_layers, n_dec_layers, ffn_dropout_p,
                 attn_dropout_p, resid_dropout_p, s1_bits, s2_bits, beta, gamma0, gamma, zeta, group_size):
        super().__init__()
        self.config = TokenizerConfig(d_in, d_model, n_heads, ff_dim, n_enc_layers, n_dec_layers,
                                      ffn_dropout_p, attn_dropout_p, resid_dropout_p, s1_bits, s2_bits,
                                      beta, gamma0, gamma, zeta, group_size)
        # attribute names of the official class, for code that reads them
        self.d_in, self.d_model, self.n_heads, self.ff_dim = d_in, d_model, n_heads, ff_dim
        self.enc_layers, self.dec_layers = n_enc_layers, n_dec_layers
        self.ffn_dropout_p, self.attn_dropout_p, self.resid_dropout_p = ffn_dropout_p, attn_dropout_p, resid_dropout_p
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.codebook_dim = s1_bits + s2_bits

        def blocks(n):
            return nn.ModuleList(Block(d_model, n_heads, ff_dim, ffn_dropout_p, attn_dropout_p, resid_dropout_p)
                                 for _ in range(n - 1))

        self.embed = nn.Linear(d_in, d_model)
        self.head = nn.Linear(d_model, d_in)
        self.encoder = blocks(n_enc_layers)
        self.decoder = blocks(n_dec_layers)
        self.quant_embed = nn.Linear(d_model, self.codebook_dim)
        self.post_quant_embed_pre = nn.Linear(s1_bits, d_model)       # decoder input from s1 only
        self.post_quant_embed = nn.Linear(self.codebook_dim, d_model)  # decoder input from s1 + s2
        self.tokenizer = _Quantizer(s1_bits, s2_bits, beta, gamma0, gamma, zeta, group_size)

    def _encode_latent(self, x):  # (B, T, d_in) -> (B, T, codebook_dim)
        z = self.embed(x)
        for block in self.encoder:
            z = block(z)
        return self.quant_embed(z)

    def _decode_latent(self, z):  # (B, T, d_model) -> (B, T, d_in)
        for block in self.decoder:
            z = block(z)
        return self.head(z)

    def forward(self, x):
        """Training pass: returns ((x_from_s1, x_from_s1_s2), bsq_loss, quantized, indices)."""
        loss, zq, idx = self.tokenizer(self._encode_latent(x))
        z_pre = self._decode_latent(self.post_quant_embed_pre(zq[:, :, :self.s1_bits]))
        z = self._decode_latent(self.post_quant_embed(zq))
        return (z_pre, z), loss, zq, idx

    def encode(self, x, half=False):
        """(B, T, d_in) -> indices (B, T), or [s1 (B, T), s2 (B, T)] when half."""
        return self.tokenizer(self._encode_latent(x), half=half, with_loss=False)[2]

    def indices_to_bits(self, x, half=False):
        """Indices -> the scaled {-1, 1} code the decoder reads, (B, T, codebook_dim)."""
        def bits(ids, n):
            mask = 2 ** torch.arange(n, device=ids.device, dtype=torch.long)
            return (ids.unsqueeze(-1) & mask) != 0
        if half:
            b = torch.cat([bits(x[0], self.s1_bits), bits(x[1], self.s2_bits)], dim=-1)
        else:
            b = bits(x, self.codebook_dim)
        return (b.float() * 2 - 1) * (1.0 / self.codebook_dim ** 0.5)

    def decode(self, x, half=False):
        """Indices (as from `encode`) -> reconstructed candles (B, T, d_in)."""
        return self._decode_latent(self.post_quant_embed(self.indices_to_bits(x, half)))


# --------------------------------------------------------------------------- Kronos


class HierarchicalEmbedding(nn.Module):
    """(s1, s2) ids -> d_model: two tables, scaled by sqrt(d), fused by a linear layer."""

    def __init__(self, s1_bits, s2_bits, d_model):
        super().__init__()
        self.s1_bits, self.s2_bits, self.d_model = s1_bits, s2_bits, d_model
        self.emb_s1 = nn.Embedding(2 ** s1_bits, d_model)
        self.emb_s2 = nn.Embedding(2 ** s2_bits, d_model)
        self.fusion_proj = nn.Linear(2 * d_model, d_model)

    def split_token(self, token_ids, s2_bits: int):
        t = token_ids.long()
        return t >> s2_bits, t & ((1 << s2_bits) - 1)

    def forward(self, token_ids):
        if isinstance(token_ids, (tuple, list)):
            s1_ids, s2_ids = token_ids
        else:
            s1_ids, s2_ids = self.split_token(token_ids, self.s2_bits)
        scale = math.sqrt(self.d_model)
        return self.fusion_proj(torch.cat([self.emb_s1(s1_ids) * scale, self.emb_s2(s2_ids) * scale], dim=-1))


class _SinusoidTable(nn.Module):
    """A frozen sinusoid table (learn_te=False); kept as `.emb` for the checkpoint keys."""

    def __init__(self, n, d_model):
        super().__init__()
        pos = torch.arange(n).float().unsqueeze(1)
        div = (torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model)).exp()
        w = torch.zeros(n, d_model)
        w[:, 0::2] = torch.sin(pos * div)
        w[:, 1::2] = torch.cos(pos * div)
        self.emb = nn.Embedding(n, d_model)
        self.emb.weight = nn.Parameter(w, requires_grad=False)

    def forward(self, x):
        return self.emb(x).detach()


class TemporalEmbedding(nn.Module):
    """Stamps (B, T, 5) = minute, hour, weekday, day, month -> (B, T, d_model)."""

    SIZES = dict(minute=60, hour=24, weekday=7, day=32, month=13)

    def __init__(self, d_model, learn_te: bool):
        super().__init__()
        make = nn.Embedding if learn_te else _SinusoidTable
        for name, n in self.SIZES.items():
            setattr(self, f"{name}_embed", make(n, d_model))

    def forward(self, stamp):
        s = stamp.long()
        # summation order matters for bit-equality with the checkpoints' reference code
        return (self.hour_embed(s[:, :, 1]) + self.weekday_embed(s[:, :, 2]) + self.day_embed(s[:, :, 3])
                + self.month_embed(s[:, :, 4]) + self.minute_embed(s[:, :, 0]))


class DependencyAwareLayer(nn.Module):
    """s2 is conditioned on the sampled s1: its embedding attends over the context."""

    def __init__(self, d_model, n_heads=4, attn_dropout_p=0.0, resid_dropout_p=0.0):
        super().__init__()
        self.cross_attn = Attention(d_model, n_heads, attn_dropout_p, resid_dropout_p)
        self.norm = RMSNorm(d_model)

    def forward(self, hidden_states, sibling_embed, key_padding_mask=None):
        # (B, T, d) + (B, Tq, d): with a 1-token query the same vector is added everywhere
        attn = self.cross_attn(sibling_embed, hidden_states, hidden_states,
                               key_padding_mask=key_padding_mask, causal=self.training)
        return self.norm(hidden_states + attn)


class DualHead(nn.Module):
    def __init__(self, s1_bits, s2_bits, d_model):
        super().__init__()
        self.vocab_s1, self.vocab_s2 = 2 ** s1_bits, 2 ** s2_bits
        self.proj_s1 = nn.Linear(d_model, self.vocab_s1)
        self.proj_s2 = nn.Linear(d_model, self.vocab_s2)

    def forward(self, x):
        return self.proj_s1(x)

    def cond_forward(self, x2):
        return self.proj_s2(x2)

    def compute_loss(self, s1_logits, s2_logits, s1_targets, s2_targets, padding_mask=None):
        """Mean of the two cross-entropies; padding_mask == 0 marks the valid positions."""
        if padding_mask is not None:
            keep = padding_mask == 0
            s1_logits, s2_logits, s1_targets, s2_targets = (s1_logits[keep], s2_logits[keep],
                                                            s1_targets[keep], s2_targets[keep])
        ce1 = F.cross_entropy(s1_logits.reshape(-1, self.vocab_s1), s1_targets.reshape(-1))
        ce2 = F.cross_entropy(s2_logits.reshape(-1, self.vocab_s2), s2_targets.reshape(-1))
        return (ce1 + ce2) / 2, ce1, ce2


class Kronos(_HubMixin, nn.Module):
    """Decoder-only transformer over hierarchical candle tokens.

    decode_s1: tokens (B, T) x2 + stamps (B, T, 5) -> s1 logits (B, T, 2**s1_bits), context (B, T, d)
    decode_s2: context + sampled s1 (B, Tq) -> s2 logits (B, T, 2**s2_bits)
    """

    config_class = KronosConfig

    def __init__(self, s1_bits, s2_bits, n_layers, d_model, n_heads, ff_dim, ffn_dropout_p, attn_dropout_p,
                 resid_dropout_p, token_dropout_p, learn_te):
        super().__init__()
        self.config = KronosConfig(s1_bits, s2_bits, n_layers, d_model, n_heads, ff_dim, ffn_dropout_p,
                                   attn_dropout_p, resid_dropout_p, token_dropout_p, learn_te)
        self.s1_bits, self.s2_bits, self.n_layers = s1_bits, s2_bits, n_layers
        self.d_model, self.n_heads, self.ff_dim, self.learn_te = d_model, n_heads, ff_dim, learn_te
        self.ffn_dropout_p, self.attn_dropout_p = ffn_dropout_p, attn_dropout_p
        self.resid_dropout_p, self.token_dropout_p = resid_dropout_p, token_dropout_p
        self.s1_vocab_size = 2 ** s1_bits

        self.token_drop = nn.Dropout(token_dropout_p)
        self.embedding = HierarchicalEmbedding(s1_bits, s2_bits, d_model)
        self.time_emb = TemporalEmbedding(d_model, learn_te)
        self.transformer = nn.ModuleList(
            Block(d_model, n_heads, ff_dim, ffn_dropout_p, attn_dropout_p, resid_dropout_p) for _ in range(n_layers))
        self.norm = RMSNorm(d_model)
        self.dep_layer = DependencyAwareLayer(d_model)  # 4 heads whatever n_heads is, as published
        self.head = DualHead(s1_bits, s2_bits, d_model)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and module.weight.requires_grad:
            nn.init.normal_(module.weight, mean=0.0, std=self.d_model ** -0.5)

    def _context(self, s1_ids, s2_ids, stamp=None, padding_mask=None):  # -> (B, T, d), normed
        x = self.embedding([s1_ids, s2_ids])
        if stamp is not None:
            x = x + self.time_emb(stamp)
        x = self.token_drop(x)
        for block in self.transformer:
            x = block(x, key_padding_mask=padding_mask)
        return self.norm(x)

    def forward(self, s1_ids, s2_ids, stamp=None, padding_mask=None, use_teacher_forcing=False, s1_targets=None):
        """Training pass: (s1 logits, s2 logits) at every position. Without teacher forcing
        the s1 that conditions s2 is sampled from the s1 logits."""
        x = self._context(s1_ids, s2_ids, stamp, padding_mask)
        s1_logits = self.head(x)
        if use_teacher_forcing:
            sibling = self.embedding.emb_s1(s1_targets)
        else:
            probs = F.softmax(s1_logits.detach(), dim=-1)
            sampled = torch.multinomial(probs.view(-1, self.s1_vocab_size), 1).view(s1_ids.shape)
            sibling = self.embedding.emb_s1(sampled)
        x2 = self.dep_layer(x, sibling, key_padding_mask=padding_mask)
        return s1_logits, self.head.cond_forward(x2)

    def decode_s1(self, s1_ids, s2_ids, stamp=None, padding_mask=None):
        x = self._context(s1_ids, s2_ids, stamp, padding_mask)
        return self.head(x), x

    def decode_s2(self, context, s1_ids, padding_mask=None):
        x2 = self.dep_layer(context, self.embedding.emb_s1(s1_ids), key_padding_mask=padding_mask)
        return self.head.cond_forward(x2)


# --------------------------------------------------------------------------- fused weights


def _fuse(params: list[nn.Parameter]) -> torch.Tensor:
    """Make `params` (same trailing shape) views of one contiguous buffer and return it.

    The parameters keep their identity and names (state_dict is unchanged) but now share
    storage with the fused tensor, so one matmul serves q/k/v (or w1/w3) without a copy of
    the weights; load_state_dict writes in place, so the fused tensor stays current.
    """
    first = params[0]
    stor = first.untyped_storage()
    offset = first.storage_offset()
    ok = all(p.is_contiguous() and p.untyped_storage().data_ptr() == stor.data_ptr() for p in params)
    if ok:
        expect = offset
        for p in params:
            ok = ok and p.storage_offset() == expect
            expect += p.numel()
    if ok:
        total = sum(p.shape[0] for p in params)
        return first.detach().as_strided((total, *first.shape[1:]), first.stride(), offset)
    # outside inference_mode: the parameters must stay usable for training afterwards
    with torch.inference_mode(False), torch.no_grad():
        fused = torch.cat([p.detach() for p in params], dim=0)
        start = 0
        for p in params:
            n = p.shape[0]
            p.data = fused[start:start + n]
            start += n
    return fused


def fused_weights(model: Kronos) -> dict:
    """Weights of `model` arranged for the cached generation loop in generate.py.

    qkv and w1|w3 are fused (see _fuse); everything else is the parameter itself.
    Cheap to call again: fusing is a no-op once the parameters share storage.
    """
    layers = []
    for b in model.transformer:
        a = b.self_attn
        layers.append(dict(
            norm1=b.norm1.weight, norm2=b.norm2.weight,
            qkv_w=_fuse([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]),
            qkv_b=_fuse([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]),
            out_w=a.out_proj.weight, out_b=a.out_proj.bias,
            w13=_fuse([b.ffn.w1.weight, b.ffn.w3.weight]), w2=b.ffn.w2.weight,
            n_heads=a.n_heads, rotary=a.rotary))
    c = model.dep_layer.cross_attn
    return dict(
        layers=layers,
        cross=dict(q_w=c.q_proj.weight, q_b=c.q_proj.bias,
                   kv_w=_fuse([c.k_proj.weight, c.v_proj.weight]), kv_b=_fuse([c.k_proj.bias, c.v_proj.bias]),
                   out_w=c.out_proj.weight, out_b=c.out_proj.bias, n_heads=c.n_heads,
                   norm=model.dep_layer.norm.weight),
    )


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["KronosTokenizer", "Kronos", "CheckpointError", "TokenizerConfig", "KronosConfig",
           "PUBLISHED_CONFIGS", "config_problems", "fused_weights", "count_parameters"]
