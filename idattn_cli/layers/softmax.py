"""Softmax attention with RoPE, the baseline with a growing KV cache.

    q, k, v = W_q x, W_k x, W_v x  split into heads         (batch, heads, len, d_head)
    o = softmax(RoPE(q) RoPE(k)^T / sqrt(d_head) + causal mask) v
    y = W_O concat_heads(o)

Training and prefill use torch's scaled_dot_product_attention. The state is the KV cache: it grows by
2 d_model numbers per token, so `state_size` depends on the context length.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .rope import RotaryEmbedding


@dataclass
class KVCache:
    keys: torch.Tensor    # (batch, heads, len so far, d_head), RoPE applied
    values: torch.Tensor  # (batch, heads, len so far, d_head)

    @property
    def length(self) -> int:
        return self.keys.shape[2]


class SoftmaxAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, rope_base: float = 10000.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.rope = RotaryEmbedding(rope_base)

    def state_size(self, context_length: int) -> int:
        """KV cache size in real numbers per sequence after `context_length` tokens."""
        return 2 * self.n_heads * self.head_dim * context_length

    def flops_per_token(self, context_length: int) -> dict[str, int]:
        """Estimate attention FLOPs per token beyond the projections: q k^T and the weighted sum of v.

        `forward` averages over the causal positions of a `context_length` sequence; `decode` is the
        step at position `context_length`, which reads the whole KV cache.
        """
        width = self.n_heads * self.head_dim
        return {"forward": 2 * width * (context_length + 1), "decode": 4 * width * context_length}

    def _heads(self, x):
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)

    def forward(self, x, state: KVCache | None = None):
        """x `(batch, len, d_model)` -> (y, KV cache including these tokens)."""
        offset = state.length if state else 0
        q = self.rope(self._heads(self.q_proj(x)), offset)
        k = self.rope(self._heads(self.k_proj(x)), offset)
        v = self._heads(self.v_proj(x))
        if state is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k, v = torch.cat([state.keys, k], dim=2), torch.cat([state.values, v], dim=2)
            # query i (at position offset + i) attends to keys 0 .. offset + i
            mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=x.device).tril(offset)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(o.transpose(1, 2).flatten(2)), KVCache(k, v)

    def step(self, x_t, state: KVCache | None = None):
        """Decode one token x_t `(batch, d_model)`; the cache grows by one position."""
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state
