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
import time

import torch
import torch.nn.functional as F

from kronos_registry.kronos.layers import RMS_EPS, Rotary
from kronos_registry.kronos.model import Kronos, fused_weights
from kronos_registry.kronos.tokenizer import KronosTokenizer

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


def sampling_probs(logits, T=1.0, top_k=0, top_p=1.0) -> torch.Tensor:
    """(N, V) logits -> (N, V) probabilities after temperature, top-k / nucleus (row-wise)."""
    logits = logits / T
    if top_k > 0 or top_p < 1.0:
        logits = filter_logits(logits, top_k, top_p)
    return F.softmax(logits, dim=-1)


def sample_tokens(logits, T=1.0, top_k=0, top_p=1.0, generator=None) -> torch.Tensor:
    """(N, V) logits -> (N, 1) sampled ids; one multinomial draw over all rows."""
    return torch.multinomial(sampling_probs(logits, T, top_k, top_p), 1, generator=generator)


# --------------------------------------------------------------------------- transformer pieces

# Prefill this many context tokens at a time (bounds the prefill's activation memory).
PREFILL_CHUNK = 128


def _rms(x, w):
    return F.rms_norm(x, (x.shape[-1],), w, RMS_EPS)


def _window_forward(model: Kronos, W: dict, s1, s2, temb, kcache=None, vcache=None, chunk: int | None = None,
                    cross_k=None, cross_v=None, pad=None):
    """Causal pass over a window of tokens at positions 0..T-1 -> normed context (R, T, d).

    s1, s2: (R, T); temb: (R, T, d). With kcache/vcache (per layer (R, H, M, hd)) each
    layer's rotated keys and values are stored at [:, :, :T]; with cross_k/cross_v
    ((R, Hc, M, hdc)) the dependency layer's keys and values of the context too.

    With `chunk` (and caches) the window is processed `chunk` tokens at a time, each
    chunk attending to the cached keys before it: the same arithmetic up to rounding,
    with activations a fraction of the window's, which keeps the prefill's peak memory
    below the reference's. Only the last chunk's context is returned then.

    With `pad` ((R,) long, left padding per row) row r's real tokens start at pad[r]: their
    rotary positions count from there (0 at the first real token, as when run alone) and
    the padded prefix is masked out of every real query's keys (a padded query sees only
    itself, which keeps it finite; nothing real reads it).
    """
    R, T = s1.shape
    d = model.d_model
    step = T if (chunk is None or kcache is None) else chunk
    c = None
    if pad is not None:
        cols = torch.arange(T, device=s1.device)
        pos = (cols[None, :] - pad[:, None]).clamp_(min=0)                 # (R, T) own positions
        valid = cols[None, :] >= pad[:, None]                              # (R, T) real keys
    for a in range(0, T, step):
        b = min(T, a + step)
        n = b - a
        x = model.embedding([s1[:, a:b], s2[:, a:b]]) + temb[:, a:b]       # (R, n, d)
        for i, L in enumerate(W["layers"]):
            H = L["n_heads"]
            hd = d // H
            h = _rms(x, L["norm1"])
            qkv = F.linear(h, L["qkv_w"], L["qkv_b"]).view(R, n, 3, H, hd).transpose(1, 3)  # (R, H, 3, n, hd)
            if pad is None:
                cos, sin = L["rotary"].tables(b, x.device)
                cos, sin = cos[a:b], sin[a:b]
            else:  # per-row positions: (R, 1, n, hd)
                cos, sin = L["rotary"].tables(T, x.device)
                cos, sin = cos[pos[:, a:b]].unsqueeze(1), sin[pos[:, a:b]].unsqueeze(1)
            q = Rotary.rotate(qkv[:, :, 0], cos, sin)                      # (R, H, n, hd)
            k = Rotary.rotate(qkv[:, :, 1], cos, sin)
            v = qkv[:, :, 2]
            if kcache is not None:
                kcache[i][:, :, a:b].copy_(k)
                vcache[i][:, :, a:b].copy_(v)
            if pad is not None:
                if i == 0:
                    qi = torch.arange(a, b, device=x.device)[:, None]
                    ki = torch.arange(b, device=x.device)[None, :]
                    mask = ((ki <= qi)[None] & (valid[:, None, :b] | (ki == qi)[None])).unsqueeze(1)  # (R,1,n,b)
                kk, vv = (k, v) if kcache is None else (kcache[i][:, :, :b], vcache[i][:, :, :b])
                y = F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask)
                del kk, vv
            elif a == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # query a+j sees keys 0..a+j: a causal mask shifted by the chunk start
                mask = torch.ones(n, b, dtype=torch.bool, device=x.device).tril(diagonal=a)
                y = F.scaled_dot_product_attention(q, kcache[i][:, :, :b], vcache[i][:, :, :b], attn_mask=mask)
            del qkv, q, k, v
            x = x + F.linear(y.transpose(1, 2).reshape(R, n, d), L["out_w"], L["out_b"])
            del y
            a_ = F.linear(_rms(x, L["norm2"]), L["w13"])                   # (R, n, 2 ff)
            ff = a_.shape[-1] // 2
            g = F.silu(a_[..., :ff]).mul_(a_[..., ff:])
            del a_
            x = x + F.linear(g, L["w2"])
            del g
        c = _rms(x, model.norm.weight)
        if cross_k is not None:
            _store_cross(W["cross"], c, cross_k, cross_v, a)
    return c


def _store_cross(cross, c, ck, cv, start):
    """Keys/values of the dependency layer for context c (R, n, d) at positions start...

    Unrotated: with a 1-token query the reference's rotary tables cover position 0 only.
    """
    R, n, d = c.shape
    Hc = cross["n_heads"]
    kv = F.linear(c, cross["kv_w"], cross["kv_b"]).view(R, n, 2, Hc, d // Hc).permute(2, 0, 3, 1, 4)
    ck[:, :, start:start + n].copy_(kv[0])
    cv[:, :, start:start + n].copy_(kv[1])


def _length_groups(lengths: list[int]) -> list[list[int]]:
    """Rows of similar length together: a group pads its rows to its longest only, so its
    shortest row wastes at most 16 tokens or 1/8 of its length on padding."""
    groups: list[list[int]] = []
    for r in sorted(range(len(lengths)), key=lambda r: lengths[r]):    # shortest first
        if groups and lengths[r] - lengths[groups[-1][0]] <= max(16, lengths[groups[-1][0]] // 8):
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def _prefill_groups(model, W, s1, s2, temb, pad, kc, vc, ck, cv):
    """Prefill a left-padded batch group by group of similar lengths, so the long padding
    of short series costs nothing: each group runs over its own window (padded to its
    longest row only, a group of one length without a mask) into temporary caches, which
    land at the group's columns of the batch's caches. -> the last context (B, d)."""
    B, L = s1.shape
    pads = pad.tolist()
    c_end = temb.new_empty(B, temb.shape[-1])
    for rows in _length_groups([L - p for p in pads]):
        lo = min(pads[r] for r in rows)
        n = L - lo
        idx = torch.tensor(rows, device=s1.device)
        gk = [t.new_empty(len(rows), t.shape[1], n, t.shape[3]) for t in kc]
        gv = [t.new_empty(len(rows), t.shape[1], n, t.shape[3]) for t in vc]
        gck = ck.new_empty(len(rows), ck.shape[1], n, ck.shape[3])
        gcv = cv.new_empty(len(rows), cv.shape[1], n, cv.shape[3])
        gpad = pad[idx] - lo
        c = _window_forward(model, W, s1[idx, lo:], s2[idx, lo:], temb[idx, lo:], gk, gv, chunk=PREFILL_CHUNK,
                            cross_k=gck, cross_v=gcv, pad=gpad if bool(gpad.any()) else None)
        for dst, src in zip((*kc, *vc, ck, cv), (*gk, *gv, gck, gcv)):
            dst[idx, :, lo:L] = src
            if lo:
                dst[idx, :, :lo] = 0        # masked out, but must be finite (0 * nan is nan)
        c_end[idx] = c[:, -1]
    return c_end


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


class _StepThreads:
    """Pick the intra-op thread count for cached CPU steps by timing them.

    A cached step is ~150 tiny operations; each parallel region waits for every OpenMP
    thread, so when other processes compete for the cores a preempted thread stalls
    every operation (measured here under load: ~400 ms a step with 2 threads against
    ~15 ms with 1; on an idle machine 2 threads win, ~4.5 vs ~7 ms). So now and then
    one step runs with the other count, and we switch when it clearly beats the recent
    mean. The costs are lopsided, so are the probes: one thread is probed every 16
    steps (and right after a slow step), all threads rarely (32 steps, doubling to 256
    while one thread keeps winning). The arithmetic does not depend on the choice; the
    caller's setting is restored at the end.
    """

    def __init__(self, device: torch.device):
        self.full = torch.get_num_threads()
        self.enabled = device.type == "cpu" and self.full > 1
        self.best, self.n, self.next_probe, self.backoff = self.full, 0, 1, 32
        self.recent: list[float] = []
        self.threads, self.t0 = self.full, 0.0

    def begin(self):
        if not self.enabled:
            return
        probing = self.n >= self.next_probe and len(self.recent) > 0
        self.threads = (1 if self.best == self.full else self.full) if probing else self.best
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        self.t0 = time.perf_counter()

    def end(self):
        if not self.enabled:
            return
        dt = time.perf_counter() - self.t0
        mean = sum(self.recent) / len(self.recent) if self.recent else dt
        if self.threads != self.best:  # a probe
            if dt < 0.8 * mean:
                self.best, self.recent = self.threads, [dt]
                self.backoff = 32
            elif self.best == 1:
                self.backoff = min(2 * self.backoff, 256)
            self.next_probe = self.n + (16 if self.best == self.full else self.backoff)
        else:
            if self.best == self.full and len(self.recent) >= 2 and dt > 2.5 * mean:
                self.next_probe = self.n + 1  # a stall: are we competing for the cores?
            self.recent = (self.recent + [dt])[-4:]
        self.n += 1

    def restore(self):
        if self.enabled and torch.get_num_threads() != self.full:
            torch.set_num_threads(self.full)


def _padding_bias(rpad: torch.Tensor, total: int, dtype) -> torch.Tensor:
    """(N,) left padding per row -> (N, 1, 1, total) additive mask: 0 for real keys, -inf
    for the padded prefix. Built once per batch and sliced per step: SDPA would otherwise
    turn a boolean mask into this very float tensor in each of its calls (same values, so
    the same result bit for bit)."""
    cols = torch.arange(total, device=rpad.device)
    bias = torch.zeros(rpad.shape[0], 1, 1, total, device=rpad.device, dtype=dtype)
    return bias.masked_fill_((cols[None, :] < rpad[:, None])[:, None, None, :], float("-inf"))


def _cached_layers(layers, tabs, kc, vc, x, p: int, rp=None, bias=None):
    """One token per row through every layer, reading and extending the caches -> (N, d).

    x: (N, d) the embedded token at position p; kc/vc: per layer (N, H, M, hd), written at
    column p. Unpadded, every row sits at position p; in a left-padded batch row r's rotary
    position is rp[r] ((N,) long) and bias ((N, 1, 1, p + 1), additive) hides its padding.
    """
    N, d = x.shape
    cur = p + 1
    for Lw, tb, kl, vl in zip(layers, tabs, kc, vc):
        H = Lw["n_heads"]
        hd = d // H
        h = _rms(x, Lw["norm1"])
        qkv = F.linear(h, Lw["qkv_w"], Lw["qkv_b"]).view(N, 3, H, hd)
        qk = qkv[:, :2]
        if rp is None:
            cs, sn = tb.cos[p], tb.sin[p]                                    # (hd,)
        else:
            cs, sn = tb.cos[rp].view(N, 1, 1, hd), tb.sin[rp].view(N, 1, 1, hd)
        qk = torch.addcmul(qk * cs, torch.roll(qk, tb.half, -1), sn)      # (N, 2, H, hd) rotated q, k
        kl.select(2, p).copy_(qk[:, 1])
        vl.select(2, p).copy_(qkv[:, 2])
        y = F.scaled_dot_product_attention(qk[:, 0].unsqueeze(2), kl[:, :, :cur], vl[:, :, :cur],
                                           attn_mask=bias)                # (N, H, 1, hd)
        x = x + F.linear(y.reshape(N, d), Lw["out_w"], Lw["out_b"])
        a = F.linear(_rms(x, Lw["norm2"]), Lw["w13"])                     # (N, 2 ff)
        ff = a.shape[-1] // 2
        x = x + F.linear(F.silu(a[:, :ff]) * a[:, ff:], Lw["w2"])
    return x


# --------------------------------------------------------------------------- generation


@torch.inference_mode()
def generate_tokens(model: Kronos, s1: torch.Tensor, s2: torch.Tensor, stamp: torch.Tensor, pred_len: int, *,
                    max_context: int = 512, sample_count: int = 1, T: float = 1.0, top_k: int = 0,
                    top_p: float = 0.99, generator: torch.Generator | None = None, progress=None,
                    pad: torch.Tensor | None = None, sampler=None):
    """Sample `pred_len` new tokens after the context tokens.

    s1, s2: (B, L) context ids; stamp: (B, L + pred_len, 5) time features of the context
    and of the steps to generate. Every series is prefilled once and its cache shared by
    its `sample_count` samples. Returns s1, s2 of shape (B * sample_count, L + pred_len).

    Series of different lengths share a batch left-padded: `pad` ((B,) long) is each
    series' count of padding tokens before its history. Its positions count from its first
    real token and the padding is masked out of every attention, so each series computes
    what it would alone (up to rounding). A padded batch must fit max_context (no sliding).
    `sampler(logits, head)` ((N, V) logits, head 1 or 2 -> (N, 1) ids) replaces the one
    draw across the batch (per-series settings and generators, see batch.py).
    """
    B, L = s1.shape
    S = sample_count
    N = B * S
    total = L + pred_len
    if sampler is None:
        sampler = lambda logits, head: sample_tokens(logits, T, top_k, top_p, generator)  # noqa: E731
    if pad is not None:
        if total > max_context:
            raise ValueError(f"a padded batch must fit the context: {L} + {pred_len} > {max_context}")
        pad = pad.to(s1.device)
        rpad = pad.repeat_interleave(S)                                # (N,)
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
    key_bias = None if pad is None else _padding_bias(rpad, total, temb.dtype)  # (N, 1, 1, total)

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

    steps = range(pred_len) if progress is None else progress(range(pred_len))
    threads = _StepThreads(torch.device(dev))
    c_last = None
    try:
        for i in steps:
            cur = L + i                       # tokens known before this step's sample
            cached = 0 < i and cur <= max_context
            if cached:
                threads.begin()
            else:
                threads.restore()
            if cur > max_context:
                # Window slides: positions restart at 0, every key changes -> full recompute.
                lo = cur - max_context
                R = B if i == 0 else N
                rows = slice(None) if R == N else slice(None, None, S)
                tw = temb[:, lo:cur] if R == B else temb[:, lo:cur].repeat_interleave(S, dim=0)
                c = _window_forward(model, W, out1[rows, lo:cur], out2[rows, lo:cur], tw)
                if R != N:
                    c = c.repeat_interleave(S, dim=0)
                _store_cross(cross, c, ck, cv, 0)
                c_last = c[:, -1]
                n_ctx = max_context
            elif i == 0:
                # Prefill once per series, then share the cache with the series' samples.
                first = lambda t: t.view(B, S, *t.shape[1:])[:, 0]  # noqa: E731  sample 0 of each series
                if pad is None:
                    c_end = _window_forward(model, W, s1, s2, temb[:, :L], [first(t) for t in kc],
                                            [first(t) for t in vc], chunk=PREFILL_CHUNK, cross_k=first(ck),
                                            cross_v=first(cv))[:, -1]
                else:
                    c_end = _prefill_groups(model, W, s1, s2, temb[:, :L], pad, [first(t) for t in kc],
                                            [first(t) for t in vc], first(ck), first(cv))
                if S > 1:
                    for t in (*kc, *vc, ck, cv):
                        t5 = t.view(B, S, *t.shape[1:])
                        t5[:, 1:, :, :L].copy_(t5[:, :1, :, :L])
                c_last = c_end.repeat_interleave(S, dim=0)
                n_ctx = L
            else:
                # One token (the previous sample, at position p) through the cached stack.
                p = cur - 1
                e = torch.cat((E1[out1[:, p]], E2[out2[:, p]]), dim=-1) * scale
                x = F.linear(e, fuse_w, fuse_b).view(B, S, d) + temb[:, p].unsqueeze(1)
                x = x.view(N, d)
                rp = None if pad is None else p - rpad                  # (N,) each row's own position
                bias = None if pad is None else key_bias[..., :cur]
                c_last = _rms(_cached_layers(layers, tabs, kc, vc, x, p, rp, bias), norm_w)  # (N, d)
                kv = F.linear(c_last, ckv_w, ckv_b).view(N, 2, Hc, hdc)
                ck.select(2, p).copy_(kv[:, 0])
                cv.select(2, p).copy_(kv[:, 1])
                n_ctx = cur

            # s1 from the last position, then s2 given the sampled s1 (dependency-aware layer).
            nxt1 = sampler(F.linear(c_last, h1_w, h1_b), 1)                                    # (N, 1)
            q = F.linear(E1[nxt1[:, 0]], cq_w, cq_b).view(N, Hc, 1, hdc)
            y = F.scaled_dot_product_attention(q, ck[:, :, :n_ctx], cv[:, :, :n_ctx],
                                               attn_mask=None if pad is None else key_bias[..., :n_ctx]).reshape(N, d)
            x2 = _rms(c_last + F.linear(y, co_w, co_b), cn_w)
            nxt2 = sampler(F.linear(x2, h2_w, h2_b), 2)
            out1[:, cur] = nxt1[:, 0]
            out2[:, cur] = nxt2[:, 0]
            if cached:
                threads.end()
    finally:
        threads.restore()
    return out1, out2


@torch.inference_mode()
def autoregressive_forecast(tokenizer: KronosTokenizer, model: Kronos, x, x_stamp, y_stamp, max_context: int,
                            pred_len: int, clip: float = 5, T: float = 1.0, top_k: int = 0, top_p: float = 0.99,
                            sample_count: int = 5, verbose: bool = False,
                            generator: torch.Generator | None = None, progress=None) -> torch.Tensor:
    """Normalised candles (B, L, d_in) -> sampled normalised forecasts (B, S, pred_len, d_in).

    ``progress`` wraps the iterable of steps (as ``generate_tokens``); ``verbose`` without it
    shows upstream's tqdm bar.

    Mirrors the reference pipeline: clip, tokenize the whole history, sample tokens,
    then decode the last `max_context` tokens (the tokenizer's decoder is causal, so the
    predicted steps see the same window as in the reference).
    """
    x = torch.clip(x, -clip, clip)
    B = x.shape[0]
    s1, s2 = tokenizer.encode(x, half=True)                             # (B, L) each, once per series
    stamp = torch.cat([x_stamp, y_stamp], dim=1)
    if verbose and progress is None:
        from tqdm.auto import tqdm
        progress = lambda it: tqdm(it, desc="Kronos", leave=False)  # noqa: E731
    t1, t2 = generate_tokens(model, s1, s2, stamp, pred_len, max_context=max_context, sample_count=sample_count,
                             T=T, top_k=top_k, top_p=top_p, generator=generator, progress=progress)
    total = t1.shape[1]
    lo = max(0, total - max_context)
    z = tokenizer.decode([t1[:, lo:], t2[:, lo:]], half=True)          # (B*S, W, d_in)
    return z.reshape(B, sample_count, z.shape[1], z.shape[2])[:, :, -pred_len:]
