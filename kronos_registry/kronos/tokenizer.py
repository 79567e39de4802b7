"""KronosTokenizer: candles (B, T, d_in) <-> two integer token streams s1 (coarse), s2 (fine), each (B, T).

An encoder stack turns each candle into a latent of s1_bits + s2_bits dimensions, the binary
spherical quantiser (layers.py) turns its signs into a code, and the code's two halves are
the hierarchical tokens Kronos predicts. A decoder stack reads a code (or its s1 half alone,
in training) back into candles. Module names mirror the official class: its checkpoints load.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from kronos_registry.kronos.checkpoint import PretrainedMixin
from kronos_registry.kronos.config import TokenizerConfig
from kronos_registry.kronos.layers import Block, Quantizer


class KronosTokenizer(PretrainedMixin, nn.Module):
    """Candles (B, T, d_in) -> hierarchical tokens (s1 coarse, s2 fine) and back.

    Encoder and decoder are causal transformer stacks of (n_layers - 1) blocks each.
    """

    role = "tokenizer"
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
        self.tokenizer = Quantizer(s1_bits, s2_bits, beta, gamma0, gamma, zeta, group_size)

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


__all__ = ["KronosTokenizer"]
