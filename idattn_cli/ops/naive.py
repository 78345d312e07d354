"""Direct evaluation of the double-sum definition of interdomain attention, for tests only.

    o_t = sum_{s<=t} sum_{s'<=t} v_s <kappa_{t-s}, kappa_{t-s'}> (k_{s'} . q_t),
    kappa_tau = Re(c diag(lam^tau) b)

Memory is heads x len^3: use it for short sequences, in float64, with a zero initial state.
"""

import torch

from .common import lag_kernel


def naive(q, k, v, log_lam, b, c):
    """Return o `(batch, heads, len, P)` from the double sum, with no recurrence involved."""
    length = q.shape[2]
    kappa = lag_kernel(log_lam, b, c, length)                      # (heads, len, M)

    # K[t, s] = kappa_{t-s} for s <= t, else 0
    lag = torch.arange(length)[:, None] - torch.arange(length)[None, :]
    K = kappa[:, lag.clamp(min=0)] * (lag >= 0)[None, :, :, None]  # (heads, len, len, M)

    G = torch.einsum("htsm,htum->htsu", K, K)                      # <kappa_{t-s}, kappa_{t-s'}>
    qk = torch.einsum("bhtr,bhur->bhtu", q, k)                      # k_{s'} . q_t
    return torch.einsum("htsu,bhtu,bhsp->bhtp", G, qk, v)
