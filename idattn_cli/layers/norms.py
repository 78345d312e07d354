"""RMSNorm over the last dimension, and its per-head form with a bias (the SSM input normalization)."""

import torch
from torch import nn


class RMSNorm(nn.Module):
    """y = x / rms(x) * weight, over the last dimension. Computes in float32 at least."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x32 = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight).to(x.dtype)


class HeadRMSNorm(nn.Module):
    """y = x / rms(x) * weight + bias per head; weight and bias `(heads, dim)`.

    x is `(batch, heads, len, dim)`, or `(batch, heads, dim)` for one decoding step.
    """

    def __init__(self, heads: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(heads, dim))
        self.bias = nn.Parameter(torch.zeros(heads, dim))

    def forward(self, x):
        x32 = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        if x.dim() == 4:  # broadcast over len
            return (y * self.weight[:, None] + self.bias[:, None]).to(x.dtype)
        return (y * self.weight + self.bias).to(x.dtype)
