"""S4D with a learned linear read-out over the M coefficients: the S4D-only token mixer's op.

Per head, with input z_t (W channels) and the same recurrence as interdomain attention:

    X_t = lam (.) X_{t-1} + b z_t^T          X complex (M, W)
    y_t = Re(c X_t)^T w = Re(X_t^T c_out)    (W,),  c_out = c^T w complex (M,)

Unrolled, y_t = sum_{s<=t} K_{t-s} z_s with the scalar kernel K_tau = Re(c_out . (lam^tau (.) b)).
Shapes: z `(batch, heads, len, W)`, log_lam, b, c_out `(heads, M)` complex,
state `(batch, heads, M, W)` complex.
"""

import math

import torch
import torch.nn.functional as F

from .chunk import chunk_states, from_planes
from .common import complex_dtype, lam_powers
from .fft import causal_convolution

BACKENDS = ("chunk", "fft", "scan")


def linear_readout(z, log_lam, b, c_out, *, backend="chunk", chunk_size=64, initial_state=None,
                   output_final_state=False):
    """Compute y `(batch, heads, len, W)`, and the final state if `output_final_state`."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if chunk_size < 1 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two; got {chunk_size}")
    out_dtype = z.dtype
    real_dtype = torch.float64 if out_dtype == torch.float64 else torch.float32
    cdtype = complex_dtype(real_dtype)
    with torch.autocast(z.device.type, enabled=False):
        z = z.to(real_dtype)
        log_lam, b, c_out = (x.to(cdtype) for x in (log_lam, b, c_out))
        if initial_state is not None:
            initial_state = initial_state.to(cdtype)
        run = {"scan": _scan, "chunk": _chunk, "fft": _fft}[backend]
        y, state = run(z, log_lam, b, c_out, initial_state, chunk_size)
    y = y.to(out_dtype)
    return (y, state) if output_final_state else y


def readout_step(state, z_t, lam, b, c_out):
    """Advance one token: z_t `(batch, heads, W)` -> (y_t `(batch, heads, W)`, state)."""
    state = lam[..., None] * state + b[..., None] * z_t.to(state.dtype)[:, :, None, :]
    return torch.einsum("hm,bhmc->bhc", c_out, state).real, state


def _scan(z, log_lam, b, c_out, state, chunk_size):
    batch, heads, _, width = z.shape
    if state is None:
        state = z.new_zeros(batch, heads, log_lam.shape[-1], width, dtype=log_lam.dtype)
    lam = torch.exp(log_lam)
    outputs = []
    for z_t in z.unbind(2):   # unbind, not z[:, :, t], for a backward linear in the length
        y_t, state = readout_step(state, z_t, lam, b, c_out)
        outputs.append(y_t)
    return (torch.stack(outputs, dim=2) if outputs else z.clone()), state


def _fft(z, log_lam, b, c_out, initial_state, chunk_size):
    length = z.shape[2]
    steps = torch.arange(length, device=z.device)
    kernel = torch.einsum("hm,htm->ht", c_out, lam_powers(log_lam, steps) * b[:, None, :]).real
    y = causal_convolution(kernel[..., None], z, length)[..., 0, :]                 # (b, h, len, W)
    state = torch.einsum("htm,bhtc->bhmc", lam_powers(log_lam, length - 1 - steps) * b[:, None, :], z.to(log_lam.dtype))
    if initial_state is not None:
        read = c_out[:, None, :] * lam_powers(log_lam, steps + 1)                   # (h, len, M)
        y = y + torch.einsum("htm,bhmc->bhtc", read, initial_state).real
        state = state + torch.exp(length * log_lam)[..., None] * initial_state
    return y, state


def _chunk(z, log_lam, b, c_out, initial_state, chunk_size):
    batch, heads, length, width = z.shape
    C = chunk_size
    n_chunks = max(1, math.ceil(length / C))
    z = F.pad(z, (0, 0, 0, n_chunks * C - length)).view(batch, heads, n_chunks, C, width)

    # 1. intra-chunk: y_i = sum_{j<=i} K_{i-j} z_j with the Toeplitz matrix of the scalar kernel
    idx = torch.arange(C, device=z.device)
    lag = idx[:, None] - idx[None, :]
    kernel = torch.einsum("hm,htm->ht", c_out, lam_powers(log_lam, idx) * b[:, None, :]).real   # (h, C)
    toeplitz = kernel[:, lag.clamp(min=0)] * (lag >= 0)                                       # (h, C, C)
    y = torch.einsum("hij,bhnjc->bhnic", toeplitz, z)

    # 2. the carried state: Re(sum_m c_out[m] lam^{i+1}[m] X_in[m, :]) = planes(conj(read)) @ X_in
    X_in, state = chunk_states(z, log_lam, b, initial_state, length)                         # (b, h, n, 2M, W)
    read = c_out[:, None, :] * lam_powers(log_lam, idx + 1)                                   # (h, C, M)
    read_planes = torch.view_as_real(read.conj().resolve_conj()).flatten(-2)                  # (h, C, 2M)
    y = y + torch.einsum("him,bhnmc->bhnic", read_planes, X_in)
    return y.reshape(batch, heads, n_chunks * C, width)[:, :, :length], from_planes(state)
