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
    """y = x / rms(x) * weight + bias per head, for x `(batch, heads, len, dim)`; weight, bias `(heads, dim)`."""

    def __init__(self, heads: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(heads, dim))
        self.bias = nn.Parameter(torch.zeros(heads, dim))

    def forward(self, x):
        x32 = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        weight, bias = self.weight[:, None, :], self.bias[:, None, :]
        if x.dim() == 3:  # one decoding step: (batch, heads, dim)
            weight, bias = self.weight, self.bias
        return (y * weight + bias).to(x.dtype)
