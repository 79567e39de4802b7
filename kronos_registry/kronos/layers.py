"""The building blocks of both Kronos networks: norms, rotary attention, the SwiGLU FFN, the
transformer block, and the binary spherical quantiser of the tokenizer.

Module and attribute names mirror the official ones: they are the ``state_dict`` keys of the
published checkpoints. Shapes: B batch, T (Tq, K) sequence lengths, d = d_model, H heads,
hd = d / H.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------- transformer


# The epsilon of every RMS norm (generate.py's fused steps use it too).
RMS_EPS = 1e-5


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = RMS_EPS):
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
        self.register_buffer("inv_freq", self.frequencies(head_dim))
        self._tables: tuple[int, torch.device, torch.Tensor, torch.Tensor] | None = None

    @staticmethod
    def frequencies(head_dim: int, device=None) -> torch.Tensor:
        """inv_freq, (head_dim/2,): 10000 ** (-2i / head_dim)."""
        return 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))

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
    """Pre-norm transformer block: (B, T, d) -> (B, T, d), causal self-attention then SwiGLU."""

    def __init__(self, d_model, n_heads, ff_dim, ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0):
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.self_attn = Attention(d_model, n_heads, attn_dropout_p, resid_dropout_p)
        self.norm2 = RMSNorm(d_model)
        self.ffn = FeedForward(d_model, ff_dim, ffn_dropout_p)

    def forward(self, x, key_padding_mask=None):
        x = x + self.self_attn(self.norm1(x), key_padding_mask=key_padding_mask, causal=True)
        return x + self.ffn(self.norm2(x))


# --------------------------------------------------------------------------- quantiser


class BSQ(nn.Module):
    """Binary spherical quantisation (arXiv 2406.07548): a code is the sign pattern of the
    L2-normalised vector, scaled back onto the sphere by 1/sqrt(dim)."""

    def __init__(self, dim: int, beta: float, gamma0: float, gamma: float, zeta: float, group_size: int):
        super().__init__()
        assert dim % group_size == 0, "s1_bits + s2_bits must be divisible by group_size"
        self.dim, self.group_size = dim, group_size
        self.beta, self.gamma0, self.gamma, self.zeta = beta, gamma0, gamma, zeta
        # Persistent buffers: the official checkpoints carry them (int64, MSB first).
        self.register_buffer("basis", self.place_values(dim))
        self.register_buffer("group_basis", self.place_values(group_size))

    @staticmethod
    def place_values(n: int, device=None) -> torch.Tensor:
        """2**(n-1), ..., 2, 1: (n,) int64."""
        return 2 ** torch.arange(n - 1, -1, -1, device=device)

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


class Quantizer(nn.Module):
    """Latent (B, T, s1_bits + s2_bits) -> its BSQ code and integer ids: one id of all the
    bits, or (half=True) one of the s1 bits and one of the s2 bits, each (B, T)."""

    def __init__(self, s1_bits, s2_bits, beta, gamma0, gamma, zeta, group_size):
        super().__init__()
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.codebook_dim = s1_bits + s2_bits
        self.bsq = BSQ(self.codebook_dim, beta, gamma0, gamma, zeta, group_size)

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


__all__ = ["RMS_EPS", "RMSNorm", "Rotary", "Attention", "FeedForward", "Block", "BSQ", "Quantizer"]
