"""Rotary position embedding (RoPE), applied per head to `(batch, heads, len, dim)` with a position offset.

Pairs (x_{2i}, x_{2i+1}) are rotated by the angle pos * base^(-2i/dim). The offset lets a sequence
processed in pieces, or decoded token by token, get the same rotations as one pass.
"""

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """RoPE for any even head dimension (frequencies follow the input's last dimension)."""

    def __init__(self, base: float = 10000.0):
        super().__init__()
        self.base = base

    def forward(self, x, offset: int = 0):
        """Rotate x `(..., len, dim)` whose first token sits at position `offset`."""
        length, dim = x.shape[-2], x.shape[-1]
        if dim % 2:
            raise ValueError(f"RoPE needs an even head dimension; got {dim}")
        inv_freq = self.base ** (-torch.arange(0, dim, 2, device=x.device, dtype=torch.float64) / dim)
        positions = torch.arange(offset, offset + length, device=x.device, dtype=torch.float64)
        angles = positions[:, None] * inv_freq[None, :]                           # (len, dim/2)
        dtype = x.dtype if x.dtype == torch.float64 else torch.float32
        cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
        x1, x2 = x[..., 0::2].to(dtype), x[..., 1::2].to(dtype)
        rotated = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
        return rotated.flatten(-2).to(x.dtype)
