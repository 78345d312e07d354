"""Interdomain attention: a query-addressable SSM memory of keys and values.

Per head, with x `(batch, len, d_model)` and the default switches (the layer of Kiyohara et al.,
"Interdomain Attention", arXiv:2605.24330):

    q_t  = xi(RoPE(conv(W_q x)_t))                     feature-mapped query        (R,)
    k~_t = RMSNorm(xi(RoPE(conv(W_k x)_t))) + b_k      normalized key features     (R,)
    v~_t = RMSNorm((W_v x)_t) + b_v                    normalized value            (P,)
    X_t  = lam (.) X_{t-1} + B_bar [k~_t ; v~_t]^T      complex diagonal S4D, X in C^{M x (R+P)}
    [U_t, Gamma_t] = Re(C X_t)                          M basis coefficients of keys and values
    o_t  = Gamma_t^T (U_t q_t)                          query-conditioned projection (P,)
    y_t  = W_O concat_heads(o_t)

xi(x) = SiLU(x) / ||SiLU(x)||_2 by default. The state per memory is M x (R+P) complex numbers,
whatever the length, plus the short convolutions' last K-1 inputs and the position (for RoPE).

Switches (constructor arguments, and keys of conf/mixer/interdomain.yaml):
  input           dual_kv: the key half is feature-mapped, xi(k) | generic: a plain projection a
  readout         query: o = Gamma^T (U xi(q)) | linear: y = Re(C X)^T w, a learned mix of the M
                  coefficients over all R+P channels, with no query (the S4D-only read-out)
  rope            RoPE on the query and the key half, after the short conv
  gate            o <- sigmoid(W_g x) (.) o before W_O
  feature_map     silu_l2 | elu | relu | identity | random_fourier | taylor (see feature_maps.py)
  readout_matrix  full | diagonal C
  kv_groups       number of (U, Gamma) memories; n_heads / kv_groups query heads read each one
  short_conv      causal depthwise conv on the query and the key half (with readout=linear, on the
                  key and value halves)
  backend         chunk (training) | fft | scan (decoding), computation forms of the same op
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..ops import BACKENDS, interdomain_attention
from ..ops.common import complex_dtype
from ..ops.linear_readout import linear_readout
from .feature_maps import build_feature_map
from .norms import HeadRMSNorm
from .rope import RotaryEmbedding
from .s4d_params import S4DParams
from .short_conv import ShortConv

CHOICES = {"input": ("dual_kv", "generic"), "readout": ("query", "linear"), "backend": BACKENDS}


@dataclass
class InterdomainState:
    """Decoding state of one layer: fixed size, independent of the context length."""

    ssm: torch.Tensor                  # (batch, kv_groups, M, R+P) complex
    conv_q: torch.Tensor | None        # (batch, K-1, width): last pre-conv inputs of each stream
    conv_k: torch.Tensor | None
    conv_v: torch.Tensor | None
    position: int                      # tokens seen so far (the RoPE offset)


class InterdomainAttention(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        state_dim: int = 64,
        feature_dim: int | None = None,
        input: str = "dual_kv",
        readout: str = "query",
        rope: bool = True,
        gate: bool = False,
        feature_map: str = "silu_l2",
        random_feature_kind: str = "positive",
        readout_matrix: str = "full",
        kv_groups: int | None = None,
        short_conv: bool = True,
        conv_size: int = 4,
        backend: str = "chunk",
        chunk_size: int = 64,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        norm_eps: float = 1e-6,
        rope_base: float = 10000.0,
    ):
        super().__init__()
        for name, value in (("input", input), ("readout", readout), ("backend", backend)):
            if value not in CHOICES[name]:
                raise ValueError(f"unknown {name} {value!r}; valid values: {', '.join(CHOICES[name])}")
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        groups = kv_groups or n_heads
        if n_heads % groups:
            raise ValueError(f"kv_groups ({groups}) must divide n_heads ({n_heads})")
        if readout == "linear" and groups != n_heads:
            raise ValueError("kv_groups needs readout=query: the linear read-out has no query heads to share a memory")

        self.n_heads, self.kv_groups = n_heads, groups
        self.input, self.readout = input, readout
        self.backend, self.chunk_size = backend, chunk_size
        self.value_dim = d_model // n_heads                     # P = d_head
        projection_dim = feature_dim or self.value_dim          # width of q and k before xi
        uses_feature_map = input == "dual_kv" or readout == "query"
        self.feature_map = build_feature_map(feature_map, projection_dim, random_feature_kind) if uses_feature_map else None
        self.feature_dim = self.feature_map.out_dim if uses_feature_map else projection_dim   # R
        self.state_dim = state_dim                              # M
        key_dim = projection_dim if input == "dual_kv" else self.feature_dim

        # projections and short convs of the streams: query (readout=query), key half, value half
        self.k_proj = nn.Linear(d_model, groups * key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, groups * self.value_dim, bias=False)
        self.q_proj = nn.Linear(d_model, n_heads * projection_dim, bias=False) if readout == "query" else None
        self.k_conv = ShortConv(groups * key_dim, conv_size) if short_conv else None
        self.q_conv = ShortConv(n_heads * projection_dim, conv_size) if short_conv and readout == "query" else None
        self.v_conv = ShortConv(groups * self.value_dim, conv_size) if short_conv and readout == "linear" else None
        self.rope = RotaryEmbedding(rope_base) if rope else None

        # the SSM memory and its input normalization
        self.k_norm = HeadRMSNorm(groups, self.feature_dim, norm_eps)
        self.v_norm = HeadRMSNorm(groups, self.value_dim, norm_eps)
        self.ssm = S4DParams(groups, state_dim, dt_min, dt_max, readout_matrix)
        self.readout_weight = nn.Parameter(torch.randn(groups, state_dim) / state_dim**0.5) if readout == "linear" else None

        out_width = n_heads * self.value_dim if readout == "query" else groups * (self.feature_dim + self.value_dim)
        self.g_proj = nn.Linear(d_model, out_width, bias=False) if gate else None
        self.out_proj = nn.Linear(out_width, d_model, bias=False)

    def ssm_parameters(self):
        """Parameters trained with the SSM learning-rate cap and no weight decay."""
        extra = [self.readout_weight] if self.readout_weight is not None else []
        return [*self.ssm.parameters(), *self.k_norm.parameters(), *self.v_norm.parameters(), *extra]

    def state_size(self, context_length: int | None = None) -> int:
        """Recurrent state in real numbers per sequence (a complex number counts as two), any context length."""
        return self.kv_groups * 2 * self.state_dim * (self.feature_dim + self.value_dim)

    def flops_per_token(self, context_length: int) -> dict[str, int]:
        """Estimate the op's FLOPs per token beyond the projections (multiply-add = 2).

        A complex-by-real product counts 4. A complex-by-complex product counts 4 when only its real
        part is formed, as in the chunk backend, and 8 in full.

        `forward` is the chunk backend in training. `decode` is one scan step, which reads out
        through associativity in O(M (R+P) + M^2) per memory. `decode_forming_y` is the
        O(M^2 (R+P)) cost of forming Re(C X_t) first, the figure usually quoted for this layer.
        """
        M, R, P, C = self.state_dim, self.feature_dim, self.value_dim, self.chunk_size
        heads, groups = self.n_heads, self.kv_groups
        state_update = groups * 4 * M * (R + P)                        # complex lam X + real z
        if self.readout == "query":
            intra = heads * 2 * C * (R + 2 * M + P)                    # scores, a, weights, o
            carried = heads * 4 * M * (R + 2 * M + P)                  # X^U q, Re(c .), c^T a, Re(X^Gamma .)
            decode = state_update + heads * (8 * M * R + 8 * M * M + 4 * M * M + 8 * M * P)
        else:
            intra = groups * 2 * C * (R + P)                           # Toeplitz kernel times z
            carried = groups * 4 * M * (R + P)                         # Re(read X), real part only
            decode = state_update + groups * 8 * M * (R + P)
        return {"forward": intra + carried + state_update, "decode": decode,
                "decode_forming_y": state_update + groups * 8 * M * M * (R + P)}

    def initial_state(self, batch: int, device=None, dtype=torch.float32) -> InterdomainState:
        def conv_state(conv):
            return conv.initial_state(batch, device, dtype) if conv is not None else None

        ssm = torch.zeros(batch, self.kv_groups, self.state_dim, self.feature_dim + self.value_dim,
                          device=device, dtype=complex_dtype(dtype))
        return InterdomainState(ssm, conv_state(self.q_conv), conv_state(self.k_conv), conv_state(self.v_conv), 0)

    def forward(self, x, state: InterdomainState | None = None, backend: str | None = None):
        """x `(batch, len, d_model)` -> (y `(batch, len, d_model)`, state after the last token)."""
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        backend = backend or self.backend

        # 1. key and value halves of the SSM input: (batch, groups, len, R) and (batch, groups, len, P)
        k, conv_k = _maybe_conv(self.k_conv, self.k_proj(x), state.conv_k)
        k = self._heads(k, self.kv_groups)
        if self.rope is not None:
            k = self.rope(k, state.position)
        if self.input == "dual_kv":
            k = self.feature_map(k)
        k = self.k_norm(k)
        v, conv_v = _maybe_conv(self.v_conv, self.v_proj(x), state.conv_v)
        v = self.v_norm(self._heads(v, self.kv_groups))

        # 2. the memory and its read-out: (batch, heads, len, P) or (batch, groups, len, R+P)
        log_lam, b, c = self.ssm.discretize()
        conv_q = None
        if self.readout == "query":
            q, conv_q = _maybe_conv(self.q_conv, self.q_proj(x), state.conv_q)
            q = self._heads(q, self.n_heads)
            if self.rope is not None:
                q = self.rope(q, state.position)
            o, ssm = self._query_readout(self.feature_map(q), k, v, log_lam, b, c, state.ssm, backend)
        else:
            c_out = torch.einsum("hkm,hk->hm", c, self.readout_weight.to(c.dtype))   # c^T w
            o, ssm = linear_readout(torch.cat([k, v], dim=-1), log_lam, b, c_out, backend=backend,
                                    chunk_size=self.chunk_size, initial_state=state.ssm, output_final_state=True)

        # 3. optional gate, heads concatenated, output projection
        o = o.transpose(1, 2).flatten(2)
        if self.g_proj is not None:
            o = o * torch.sigmoid(self.g_proj(x))
        new_state = InterdomainState(ssm, conv_q, conv_k, conv_v, state.position + x.shape[1])
        return self.out_proj(o), new_state

    def step(self, x_t, state: InterdomainState | None = None):
        """Decode one token x_t `(batch, d_model)` with the scan backend; cost does not grow with context."""
        y, state = self.forward(x_t[:, None], state, backend="scan")
        return y[:, 0], state

    def _heads(self, x, heads):
        """(batch, len, heads * dim) -> (batch, heads, len, dim)."""
        return x.unflatten(-1, (heads, -1)).transpose(1, 2)

    def _query_readout(self, q, k, v, log_lam, b, c, initial_state, backend):
        # NOTE: with kv_groups < n_heads each query head runs its group's memory itself (the same
        # numbers, computed n_heads / kv_groups times): the outputs and the reported state are exact,
        # the compute is not shared.
        repeats = self.n_heads // self.kv_groups
        if repeats > 1:
            k, v, initial_state = (t.repeat_interleave(repeats, dim=1) for t in (k, v, initial_state))
            log_lam, b, c = (t.repeat_interleave(repeats, dim=0) for t in (log_lam, b, c))
        o, ssm = interdomain_attention(q, k, v, log_lam, b, c, backend=backend, chunk_size=self.chunk_size,
                                       initial_state=initial_state, output_final_state=True)
        return o, ssm[:, ::repeats]


def _maybe_conv(conv, x, state):
    """Apply a short conv if the layer has one; return (output, conv state)."""
    return (x, None) if conv is None else conv(x, state)
