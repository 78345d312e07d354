"""Complex diagonal S4D parametrization shared by the fixed-state mixers.

Per head h and mode m: A = -exp(log_neg_re_A) + i im_A, step Delta_h > 0, learned input B and
read-out C, all complex. C is a full M x M matrix, or diagonal (M numbers) with
`readout_matrix="diagonal"`. Zero-order hold gives the discrete recurrence
X_t = lam (.) X_{t-1} + B_bar z_t^T with lam = exp(Delta A) and B_bar = (lam - 1) / A * B.

Init (S4D-Inv): Re(A) = -1/2, Im(A)_n = (M/pi) (M/(2n+1) - 1); B = 1; C complex normal with
E|C_km|^2 = 1/M; Delta per head log-uniform in [dt_min, dt_max], stratified: the log range is cut
into `heads` equal bins and each head draws from its own bin. Every layer so gets fast heads, which
settle within tens of tokens, as well as slow ones, whose state takes about 1/Delta tokens to fill.
With only slow heads, the layer's output scale at init would keep rising for hundreds of tokens.
"""

import math

import torch
from torch import nn


class S4DParams(nn.Module):
    """Parameters of `heads` complex diagonal recurrences with M modes each."""

    def __init__(self, heads: int, state_dim: int, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 readout_matrix: str = "full"):
        super().__init__()
        if readout_matrix not in ("full", "diagonal"):
            raise ValueError(f"unknown readout_matrix {readout_matrix!r}; valid values: full, diagonal")
        self.readout_matrix = readout_matrix
        n = torch.arange(state_dim, dtype=torch.float32)
        self.log_neg_re_A = nn.Parameter(torch.full((heads, state_dim), math.log(0.5)))
        self.im_A = nn.Parameter((state_dim / math.pi) * (state_dim / (2 * n + 1) - 1).expand(heads, -1).clone())
        bin_width = (math.log(dt_max) - math.log(dt_min)) / heads
        log_dt = math.log(dt_min) + bin_width * (torch.arange(heads) + torch.rand(heads))
        self.log_dt = nn.Parameter(log_dt)
        self.B = nn.Parameter(torch.stack([torch.ones(heads, state_dim), torch.zeros(heads, state_dim)], -1))
        if readout_matrix == "full":
            self.C = nn.Parameter(torch.randn(heads, state_dim, state_dim, 2) * (0.5 / state_dim) ** 0.5)
        else:  # E|C_mm|^2 = 1, the diagonal alone carries each mode
            self.C = nn.Parameter(torch.randn(heads, state_dim, 2) * 0.5**0.5)

    def discretize(self):
        """Return (log_lam `(heads, M)`, b `(heads, M)`, c `(heads, M, M)`), complex, for the op."""
        # at least float32: the recurrence sums thousands of terms of similar size
        dtype = torch.float64 if self.C.dtype == torch.float64 else torch.float32
        A = torch.complex(-torch.exp(self.log_neg_re_A.to(dtype)), self.im_A.to(dtype))
        log_lam = torch.exp(self.log_dt.to(dtype))[:, None] * A
        b = (torch.exp(log_lam) - 1) / A * torch.view_as_complex(self.B.to(dtype).contiguous())
        c = torch.view_as_complex(self.C.to(dtype).contiguous())
        if self.readout_matrix == "diagonal":
            c = torch.diag_embed(c)
        return log_lam, b, c
