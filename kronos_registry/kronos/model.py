"""Kronos: a decoder-only transformer over hierarchical candle tokens (arXiv 2508.02739).

Written from the paper and from the shapes of the published checkpoints; the module tree
mirrors the official one, so ``state_dict`` keys and shapes are identical and the hub's
``config.json`` + ``model.safetensors`` load unchanged (checkpoint.py).

    decode_s1   s1, s2 (B, T) + stamps (B, T, 5) -> s1 logits (B, T, 2**s1_bits), context (B, T, d)
    decode_s2   context + the sampled s1 (B, Tq)  -> s2 logits (B, T, 2**s2_bits)

The tokenizer is tokenizer.py, the shared blocks layers.py; generation with a key/value
cache is generate.py, which reads the weights through ``fused_weights``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from kronos_registry.kronos.checkpoint import PretrainedMixin
from kronos_registry.kronos.config import DEPENDENCY_HEADS, KronosConfig
from kronos_registry.kronos.layers import Attention, Block, RMSNorm

# --------------------------------------------------------------------------- parts


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
    """The two output heads: context (.., d) -> s1 logits; (s1-conditioned) context -> s2 logits."""

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


class Kronos(PretrainedMixin, nn.Module):
    """Decoder-only transformer over hierarchical candle tokens.

    decode_s1: tokens (B, T) x2 + stamps (B, T, 5) -> s1 logits (B, T, 2**s1_bits), context (B, T, d)
    decode_s2: context + sampled s1 (B, Tq) -> s2 logits (B, T, 2**s2_bits)
    """

    role = "model"
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
        self.dep_layer = DependencyAwareLayer(d_model, DEPENDENCY_HEADS)  # whatever n_heads is, as published
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


__all__ = ["Kronos", "fused_weights"]
