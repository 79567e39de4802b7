"""Autoregressive sampling for Kronos with a key/value cache.

The reference loop re-runs the whole context through the transformer for every new
token. Here the context is run once (the "prefill"), each layer's rotated keys and
values are kept in preallocated buffers, and every later step pushes one token through
the stack. That is exact while the sequence fits `max_context`. Once it does not, the
reference slides its window and restarts positions at 0, which changes every key, so
those steps recompute the whole window (as the reference does) to stay exact.

Random numbers are drawn in the reference's order: per step one `multinomial` over the
(B * sample_count, vocab) s1 probabilities, then one over the s2 probabilities, rows
ordered series-major (series 0 sample 0, series 0 sample 1, ...). A seeded generator
therefore reproduces a seeded reference run token for token.

Speed on a CPU is dominated by per-operation overhead (a cached step reads ~100 MB of
weights for Kronos-small; each torch call costs microseconds), so the step works on raw
tensors, with q/k/v and w1/w3 fused into single matmuls, no nn.Module calls, and the
s1/s2 heads evaluated at the last position only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .model import Kronos, KronosTokenizer, fused_weights


# --------------------------------------------------------------------------- sampling


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Mask (with -inf) what top-k or nucleus sampling excludes; (N, V) -> (N, V).

    As in the reference, top-k wins when both are given, and nucleus keeps the first
    token whose cumulative probability crosses top_p.
    """
    if top_k > 0:
        k = min(max(top_k, 1), logits.size(-1))
        kth = torch.topk(logits, k)[0][..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        drop = torch.zeros_like(cum, dtype=torch.bool)
        drop[..., 1:] = cum[..., :-1] > top_p          # shifted: the crossing token stays
        return logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


def sample_tokens(logits, T=1.0, top_k=0, top_p=1.0, generator=None) -> torch.Tensor:
    """(N, V) logits -> (N, 1) sampled ids; one multinomial draw over all rows."""
    logits = logits / T
    if top_k > 0 or top_p < 1.0:
        logits = filter_logits(logits, top_k, top_p)
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)


# --------------------------------------------------------------------------- transformer pieces


def _rms(x, w):
    return F.rms_norm(x, (x.shape[-1],), w, 1e-5)


def _window_forward(model: Kronos, W: dict, s1, s2, temb, kcache=None, vcache=None):
    """Full causal pass over a window, positions 0..T-1.

    s1, s2: (R, T); temb: (R, T, d). When kcache/vcache (lists of (R, H, M, hd)) are
    given, each layer's rotated keys and values are stored at [..., :T, :].
    Returns the normed context (R, T, d).
    """
    R, T = s1.shape
    d = model.d_model
    x = model.embedding([s1, s2]) + temb                               # (R, T, d)
    for i, L in enumerate(W["layers"]):
        H = L["n_heads"]
        hd = d // H
        h = _rms(x, L["norm1"])
        qkv = F.linear(h, L["qkv_w"], L["qkv_b"]).view(R, T, 3, H, hd).transpose(1, 3)  # (R, H, 3, T, hd)
        cos, sin = L["rotary"].tables(T, x.device)
        q = _rotate(qkv[:, :, 0], cos, sin)                            # (R, H, T, hd)
        k = _rotate(qkv[:, :, 1], cos, sin)
        v = qkv[:, :, 2]
        if kcache is not None:
            kcache[i][:, :, :T].copy_(k)
            vcache[i][:, :, :T].copy_(v)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)    # (R, H, T, hd)
        x = x + F.linear(y.transpose(1, 2).reshape(R, T, d), L["out_w"], L["out_b"])
        a = F.linear(_rms(x, L["norm2"]), L["w13"])                    # (R, T, 2 ff)
        ff = a.shape[-1] // 2
        x = x + F.linear(F.silu(a[..., :ff]) * a[..., ff:], L["w2"])
    return _rms(x, model.norm.weight)


def _rotate(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class _Tables:
    """Rotary cos and 'signed' sin per position, so that rotating one position is
    x * cos + roll(x, hd/2) * sin_signed (roll swaps the halves; the sign makes it
    (-x2, x1) as in rotate-half)."""

    def __init__(self, rotary, n, device):
        cos, sin = rotary.tables(n, device)
        half = cos.shape[-1] // 2
        sign = torch.ones_like(sin)
        sign[:, :half] = -1
        self.cos = cos.contiguous()
        self.sin = (sin * sign).contiguous()
        self.half = half


# --------------------------------------------------------------------------- generation


@torch.inference_mode()
def generate_tokens(model: Kronos, s1: torch.Tensor, s2: torch.Tensor, stamp: torch.Tensor, pred_len: int, *,
                    max_context: int = 512, sample_count: int = 1, T: float = 1.0, top_k: int = 0,
                    top_p: float = 0.99, generator: torch.Generator | None = None, progress=None):
    """Sample `pred_len` new tokens after the context tokens.

    s1, s2: (B, L) context ids; stamp: (B, L + pred_len, 5) time features of the context
    and of the steps to generate. Every series is prefilled once and its cache shared by
    its `sample_count` samples. Returns s1, s2 of shape (B * sample_count, L + pred_len).
    """
    B, L = s1.shape
    S = sample_count
    N = B * S
    total = L + pred_len
    dev = s1.device
    d = model.d_model
    W = fused_weights(model)
    cross = W["cross"]
    Hc = cross["n_heads"]
    hdc = d // Hc

    out1 = s1.new_empty(N, total)
    out2 = s2.new_empty(N, total)
    out1[:, :L] = s1.repeat_interleave(S, dim=0)
    out2[:, :L] = s2.repeat_interleave(S, dim=0)
    temb = model.time_emb(stamp)                                       # (B, total, d)

    # Caches hold positions 0..M-1; only used while the sequence fits max_context.
    M = min(total, max_context)
    layers = W["layers"]
    H = layers[0]["n_heads"] if layers else 1
    hd = d // H
    dtype = temb.dtype
    kc = [torch.empty(N, H, M, hd, device=dev, dtype=dtype) for _ in layers]
    vc = [torch.empty(N, H, M, hd, device=dev, dtype=dtype) for _ in layers]
    ck = torch.empty(N, Hc, M, hdc, device=dev, dtype=dtype)          # cross-attention keys (context)
    cv = torch.empty(N, Hc, M, hdc, device=dev, dtype=dtype)
    tabs = [_Tables(Lw["rotary"], M, dev) for Lw in layers]

    E1 = model.embedding.emb_s1.weight
    E2 = model.embedding.emb_s2.weight
    fuse_w, fuse_b = model.embedding.fusion_proj.weight, model.embedding.fusion_proj.bias
    scale = math.sqrt(d)
    norm_w = model.norm.weight
    h1_w, h1_b = model.head.proj_s1.weight, model.head.proj_s1.bias
    h2_w, h2_b = model.head.proj_s2.weight, model.head.proj_s2.bias
    cq_w, cq_b, ckv_w, ckv_b = cross["q_w"], cross["q_b"], cross["kv_w"], cross["kv_b"]
    co_w, co_b, cn_w = cross["out_w"], cross["out_b"], cross["norm"]

    def store_cross(c, rows_view_k, rows_view_v, T):
        # c: (R, T, d) normed context -> keys/values of the dependency layer, unrotated
        # (a 1-token query means position 0 only: the reference rotates neither side).
        kv = F.linear(c, ckv_w, ckv_b).view(c.shape[0], T, 2, Hc, hdc).permute(2, 0, 3, 1, 4)
        rows_view_k[:, :, :T].copy_(kv[0])
        rows_view_v[:, :, :T].copy_(kv[1])

    steps = range(pred_len) if progress is None else progress(range(pred_len))
    c_last = None
    for i in steps:
        cur = L + i                       # tokens known before this step's sample
        if cur > max_context:
            # Window slides: positions restart at 0, every key changes -> full recompute.
            lo = cur - max_context
            R = B if i == 0 else N
            rows = slice(None) if R == N else slice(None, None, S)
            tw = temb[:, lo:cur] if R == B else temb[:, lo:cur].repeat_interleave(S, dim=0)
            c = _window_forward(model, W, out1[rows, lo:cur], out2[rows, lo:cur], tw)
            if R != N:
                c = c.repeat_interleave(S, dim=0)
            store_cross(c, ck, cv, max_context)
            c_last = c[:, -1]
            n_ctx = max_context
        elif i == 0:
            # Prefill once per series, then share the cache with the series' samples.
            if S == 1:
                c = _window_forward(model, W, s1, s2, temb[:, :L], kc, vc)
                store_cross(c, ck, cv, L)
            else:
                k5 = [t.view(B, S, H, M, hd)[:, 0] for t in kc]
                v5 = [t.view(B, S, H, M, hd)[:, 0] for t in vc]
                c = _window_forward(model, W, s1, s2, temb[:, :L], k5, v5)
                store_cross(c, ck.view(B, S, Hc, M, hdc)[:, 0], cv.view(B, S, Hc, M, hdc)[:, 0], L)
                for t in (*kc, *vc, ck, cv):
                    t5 = t.view(B, S, *t.shape[1:])
                    t5[:, 1:, :, :L].copy_(t5[:, :1, :, :L])
                c = c.repeat_interleave(S, dim=0)
            c_last = c[:, -1]
            n_ctx = L
        else:
            # One token (the previous sample, at position p) through the cached stack.
            p = cur - 1
            e = torch.cat((E1[out1[:, p]], E2[out2[:, p]]), dim=-1) * scale
            x = F.linear(e, fuse_w, fuse_b).view(B, S, d) + temb[:, p].unsqueeze(1)
            x = x.view(N, d)
            for li, Lw in enumerate(layers):
                tb = tabs[li]
                h = _rms(x, Lw["norm1"])
                qkv = F.linear(h, Lw["qkv_w"], Lw["qkv_b"]).view(N, 3, H, hd)
                qk = qkv[:, :2]
                qk = torch.addcmul(qk * tb.cos[p], torch.roll(qk, tb.half, -1), tb.sin[p])  # (N, 2, H, hd)
                kl, vl = kc[li], vc[li]
                kl.select(2, p).copy_(qk[:, 1])
                vl.select(2, p).copy_(qkv[:, 2])
                y = F.scaled_dot_product_attention(qk[:, 0].unsqueeze(2), kl[:, :, :cur], vl[:, :, :cur])
                x = x + F.linear(y.reshape(N, d), Lw["out_w"], Lw["out_b"])
                a = F.linear(_rms(x, Lw["norm2"]), Lw["w13"])
                ff = a.shape[-1] // 2
                x = x + F.linear(F.silu(a[:, :ff]) * a[:, ff:], Lw["w2"])
            c_last = _rms(x, norm_w)                                   # (N, d)
            kv = F.linear(c_last, ckv_w, ckv_b).view(N, 2, Hc, hdc)
            ck.select(2, p).copy_(kv[:, 0])
            cv.select(2, p).copy_(kv[:, 1])
            n_ctx = cur

        # s1 from the last position, then s2 given the sampled s1 (dependency-aware layer).
        nxt1 = sample_tokens(F.linear(c_last, h1_w, h1_b), T, top_k, top_p, generator)       # (N, 1)
        q = F.linear(E1[nxt1[:, 0]], cq_w, cq_b).view(N, Hc, 1, hdc)
        y = F.scaled_dot_product_attention(q, ck[:, :, :n_ctx], cv[:, :, :n_ctx]).reshape(N, d)
        x2 = _rms(c_last + F.linear(y, co_w, co_b), cn_w)
        nxt2 = sample_tokens(F.linear(x2, h2_w, h2_b), T, top_k, top_p, generator)
        out1[:, cur] = nxt1[:, 0]
        out2[:, cur] = nxt2[:, 0]
    return out1, out2


@torch.inference_mode()
def autoregressive_forecast(tokenizer: KronosTokenizer, model: Kronos, x, x_stamp, y_stamp, max_context: int,
                            pred_len: int, clip: float = 5, T: float = 1.0, top_k: int = 0, top_p: float = 0.99,
                            sample_count: int = 5, verbose: bool = False,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """Normalised candles (B, L, d_in) -> sampled normalised forecasts (B, S, pred_len, d_in).

    Mirrors the reference pipeline: clip, tokenize the whole history, sample tokens,
    then decode the last `max_context` tokens (the tokenizer's decoder is causal, so the
    predicted steps see the same window as in the reference).
    """
    x = torch.clip(x, -clip, clip)
    B = x.shape[0]
    s1, s2 = tokenizer.encode(x, half=True)                             # (B, L) each, once per series
    stamp = torch.cat([x_stamp, y_stamp], dim=1)
    progress = None
    if verbose:
        from tqdm.auto import tqdm
        progress = lambda it: tqdm(it, desc="Kronos", leave=False)  # noqa: E731
    t1, t2 = generate_tokens(model, s1, s2, stamp, pred_len, max_context=max_context, sample_count=sample_count,
                             T=T, top_k=top_k, top_p=top_p, generator=generator, progress=progress)
    total = t1.shape[1]
    lo = max(0, total - max_context)
    z = tokenizer.decode([t1[:, lo:], t2[:, lo:]], half=True)          # (B*S, W, d_in)
    return z.reshape(B, sample_count, z.shape[1], z.shape[2])[:, :, -pred_len:]
