"""Interdomain attention: a query-addressable SSM memory of keys and values.

Per head, with x `(batch, len, d_model)`:

    q_t  = xi(conv(W_q x)_t)                         feature-mapped query       (R,)
    k~_t = RMSNorm(xi(conv(W_k x)_t)) + b_k          normalized key features    (R,)
    v~_t = RMSNorm((W_v x)_t) + b_v                  normalized value           (P,)
    X_t  = lam (.) X_{t-1} + B_bar [k~_t ; v~_t]^T    complex diagonal S4D, X in C^{M x (R+P)}
    [U_t, Gamma_t] = Re(C X_t)                        M basis coefficients of keys and values
    o_t  = Gamma_t^T (U_t q_t)                        query-conditioned projection (P,)
    y_t  = W_O concat_heads(o_t)

xi(x) = SiLU(x) / ||SiLU(x)||_2. The state per head is M x (R+P) complex numbers, whatever the
length, plus the short convolutions' last K-1 inputs.
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..ops import BACKENDS, interdomain_attention, scan_step
from ..ops.common import complex_dtype
from .feature_maps import FEATURE_MAPS
from .norms import HeadRMSNorm
from .s4d_params import S4DParams
from .short_conv import ShortConv


@dataclass
class InterdomainState:
    """Decoding state of one layer: fixed size, independent of the context length."""

    conv_q: torch.Tensor  # (batch, K-1, heads * R): last pre-conv query inputs
    conv_k: torch.Tensor  # (batch, K-1, heads * R)
    ssm: torch.Tensor     # (batch, heads, M, R+P) complex


class InterdomainAttention(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        state_dim: int = 64,
        feature_dim: int | None = None,
        conv_size: int = 4,
        feature_map: str = "silu_l2",
        backend: str = "chunk",
        chunk_size: int = 64,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
        self.n_heads = n_heads
        self.value_dim = d_model // n_heads                     # P = d_head
        self.feature_dim = feature_dim or self.value_dim        # R
        self.state_dim = state_dim                              # M
        self.backend, self.chunk_size = backend, chunk_size
        self.feature_map = FEATURE_MAPS[feature_map]

        qk_width, v_width = n_heads * self.feature_dim, n_heads * self.value_dim
        self.q_proj = nn.Linear(d_model, qk_width, bias=False)
        self.k_proj = nn.Linear(d_model, qk_width, bias=False)
        self.v_proj = nn.Linear(d_model, v_width, bias=False)
        self.q_conv = ShortConv(qk_width, conv_size)
        self.k_conv = ShortConv(qk_width, conv_size)
        self.k_norm = HeadRMSNorm(n_heads, self.feature_dim, norm_eps)
        self.v_norm = HeadRMSNorm(n_heads, self.value_dim, norm_eps)
        self.ssm = S4DParams(n_heads, state_dim, dt_min, dt_max)
        self.out_proj = nn.Linear(v_width, d_model, bias=False)

    def ssm_parameters(self):
        """Parameters trained with the SSM learning-rate cap and no weight decay."""
        return [*self.ssm.parameters(), *self.k_norm.parameters(), *self.v_norm.parameters()]

    def state_size(self) -> int:
        """Recurrent state in real numbers per sequence (a complex number counts as two)."""
        return self.n_heads * 2 * self.state_dim * (self.feature_dim + self.value_dim)

    def initial_state(self, batch: int, device=None, dtype=torch.float32) -> InterdomainState:
        H, M, R, P = self.n_heads, self.state_dim, self.feature_dim, self.value_dim
        return InterdomainState(
            conv_q=self.q_conv.initial_state(batch, device, dtype),
            conv_k=self.k_conv.initial_state(batch, device, dtype),
            ssm=torch.zeros(batch, H, M, R + P, device=device, dtype=complex_dtype(dtype)),
        )

    def _heads(self, x):
        """(batch, len, heads * dim) -> (batch, heads, len, dim)."""
        return x.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)

    def forward(self, x, state: InterdomainState | None = None):
        """x `(batch, len, d_model)` -> (y `(batch, len, d_model)`, state after the last token)."""
        q, conv_q = self.q_conv(self.q_proj(x), state.conv_q if state else None)
        k, conv_k = self.k_conv(self.k_proj(x), state.conv_k if state else None)
        v = self.v_proj(x)

        q = self.feature_map(self._heads(q))                    # (batch, heads, len, R)
        k = self.k_norm(self.feature_map(self._heads(k)))       # (batch, heads, len, R)
        v = self.v_norm(self._heads(v))                         # (batch, heads, len, P)

        log_lam, b, c = self.ssm.discretize()
        o, ssm = interdomain_attention(
            q, k, v, log_lam, b, c,
            backend=self.backend,
            chunk_size=self.chunk_size,
            initial_state=state.ssm if state else None,
            output_final_state=True,
        )
        y = self.out_proj(o.transpose(1, 2).flatten(2))
        return y, InterdomainState(conv_q, conv_k, ssm)

    def step(self, x_t, state: InterdomainState | None = None):
        """Decode one token x_t `(batch, d_model)` -> (y_t `(batch, d_model)`, state), at a cost independent of the context length."""
        if state is None:
            state = self.initial_state(x_t.shape[0], x_t.device, x_t.dtype)
        batch = x_t.shape[0]
        q, conv_q = self.q_conv.step(self.q_proj(x_t), state.conv_q)
        k, conv_k = self.k_conv.step(self.k_proj(x_t), state.conv_k)
        v = self.v_proj(x_t)

        q = self.feature_map(q.view(batch, self.n_heads, -1))  # (batch, heads, R)
        k = self.k_norm(self.feature_map(k.view(batch, self.n_heads, -1)))
        v = self.v_norm(v.view(batch, self.n_heads, -1))        # (batch, heads, P)

        log_lam, b, c = self.ssm.discretize()
        with torch.autocast(x_t.device.type, enabled=False):
            o, ssm = scan_step(state.ssm, q.to(log_lam.real.dtype), k.to(log_lam.real.dtype),
                               v.to(log_lam.real.dtype), torch.exp(log_lam), b, c)
        y_t = self.out_proj(o.flatten(1).to(x_t.dtype))
        return y_t, InterdomainState(conv_q, conv_k, ssm)
