"""FFT backend of interdomain attention: the lag kernel for all lags, then causal FFT convolution.

    Y_t = sum_{s<=t} kappa_{t-s} z_s^T + Re(c diag(lam^{t+1}) X_0),   kappa_tau = Re(c diag(lam^tau) b)
    a_t = Y_t[:, :R] q_t,   o_t = Y_t[:, R:]^T a_t

S4D is time-invariant, so U and Gamma for every t come from one convolution of the kernel with
z = [k ; v]. This forms Y: memory len x M x (R+P) per head and batch element, so it suits short
sequences; the chunk backend avoids that tensor.
"""

import torch

from .common import lag_kernel, lam_powers


def causal_convolution(kernel, signal, length):
    """sum_{s<=t} kernel[t-s] signal[s] along dim -2 of `signal` and dim 1 of `kernel`, by zero-padded FFT.

    kernel `(heads, len, M)` real, signal `(batch, heads, len, W)` real -> `(batch, heads, len, M, W)`.
    """
    n = 1 << (2 * length - 1).bit_length()          # no wrap-around: n >= 2 len - 1
    kernel_f = torch.fft.rfft(kernel, n=n, dim=1)    # (h, F, M)
    signal_f = torch.fft.rfft(signal, n=n, dim=2)    # (b, h, F, W)
    product = kernel_f[None, :, :, :, None] * signal_f[:, :, :, None, :]
    return torch.fft.irfft(product, n=n, dim=2)[:, :, :length]


def fft(q, k, v, log_lam, b, c, initial_state):
    """Shapes as in `interdomain_attention`; returns (o, final_state)."""
    length, rank = q.shape[2], q.shape[3]
    z = torch.cat([k, v], dim=-1)                                         # (b, h, len, R+P)
    Y = causal_convolution(lag_kernel(log_lam, b, c, length), z, length)  # (b, h, len, M, R+P)

    steps = torch.arange(length, device=q.device)
    if initial_state is not None:
        decayed = lam_powers(log_lam, steps + 1)                          # (h, len, M)
        Y = Y + torch.einsum("hkm,htm,bhmc->bhtkc", c, decayed, initial_state).real

    a = torch.einsum("bhtmr,bhtr->bhtm", Y[..., :rank], q)
    o = torch.einsum("bhtmp,bhtm->bhtp", Y[..., rank:], a)

    final = torch.einsum("htm,bhtc->bhmc", lam_powers(log_lam, length - 1 - steps) * b[:, None, :], z.to(log_lam.dtype))
    if initial_state is not None:
        final = final + torch.exp(length * log_lam)[..., None] * initial_state
    return o, final
