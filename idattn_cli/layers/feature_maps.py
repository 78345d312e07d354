"""Feature maps xi that turn queries and keys into kernel features, K(q, k) ~ xi(q)^T xi(k).

Each map is a module over the last dimension with `out_dim`, the feature count R that sizes the
state. Maps with random projections draw them once at init and keep them fixed (buffers).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class SiLUL2(nn.Module):
    """xi(x) = SiLU(x) / ||SiLU(x)||_2, DeltaNet-style, the map arXiv:2605.24330 trains with."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.out_dim, self.eps = dim, eps

    def forward(self, x):
        y = F.silu(x)
        return y / (y.norm(dim=-1, keepdim=True) + self.eps)


class Elementwise(nn.Module):
    """xi(x) = f(x) elementwise: `elu` (ELU(x) + 1, as in linear transformers), `relu`, `identity`."""

    FUNCTIONS = {"elu": lambda x: F.elu(x) + 1, "relu": F.relu, "identity": lambda x: x}

    def __init__(self, dim: int, name: str):
        super().__init__()
        self.out_dim, self.function = dim, self.FUNCTIONS[name]

    def forward(self, x):
        return self.function(x)


class RandomFourier(nn.Module):
    """Random features of the l2-normalized input x^ with fixed w_i ~ N(0, I):

    positive (Performer FAVOR+): xi(x) = exp(W x^ - 1/2) / sqrt(m), m = dim, for K = exp(q^ . k^);
    trig (Bochner):              xi(x) = [cos W x^, sin W x^] / sqrt(m), m = dim / 2, for a Gaussian K.
    Normalizing first keeps exp() bounded whatever the scale of the projections.
    """

    def __init__(self, dim: int, kind: str = "positive"):
        super().__init__()
        if kind not in ("positive", "trig"):
            raise ValueError(f"unknown random feature kind {kind!r}; valid kinds: positive, trig")
        if kind == "trig" and dim % 2:
            raise ValueError(f"trig random features need an even feature_dim; got {dim}")
        self.kind, self.out_dim = kind, dim
        n_features = dim if kind == "positive" else dim // 2
        self.register_buffer("projection", torch.randn(n_features, dim))

    def forward(self, x):
        x = F.normalize(x, dim=-1)
        wx = x @ self.projection.to(x.dtype).T
        if self.kind == "positive":
            return torch.exp(wx - 0.5) / math.sqrt(wx.shape[-1])
        return torch.cat([wx.cos(), wx.sin()], dim=-1) / math.sqrt(wx.shape[-1])


class Taylor(nn.Module):
    """Second-order Taylor features of exp(q . k): xi(x) = [1, x, vec(x x^T) / sqrt(2)], x scaled by dim^-1/4.

    out_dim = 1 + dim + dim^2, so the state grows quadratically with feature_dim: keep feature_dim small.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim, self.out_dim = dim, 1 + dim + dim * dim

    def forward(self, x):
        x = x * self.dim ** -0.25
        outer = (x[..., :, None] * x[..., None, :]).flatten(-2) / math.sqrt(2)
        return torch.cat([torch.ones_like(x[..., :1]), x, outer], dim=-1)


FEATURE_MAPS = ("silu_l2", "elu", "relu", "identity", "random_fourier", "taylor")


def build_feature_map(name: str, dim: int, random_feature_kind: str = "positive") -> nn.Module:
    """Build feature map `name` for inputs of width `dim`."""
    if name == "silu_l2":
        return SiLUL2(dim)
    if name in Elementwise.FUNCTIONS:
        return Elementwise(dim, name)
    if name == "random_fourier":
        return RandomFourier(dim, random_feature_kind)
    if name == "taylor":
        return Taylor(dim)
    raise ValueError(f"unknown feature map {name!r}; valid feature maps: {', '.join(FEATURE_MAPS)}")
