"""Chunkwise interdomain attention: matmuls inside chunks of C tokens, a short serial pass across them.

For the chunk that starts at token t0, with X_in the state after token t0-1, i = t - t0 and the
Toeplitz tensor T[i, j] = kappa_{i-j} (zero for j > i), kappa_tau = Re(c diag(lam^tau) b):

    a_t = sum_{j<=i} (q_t . k_j) T[i, j]        + Re(c diag(lam^{i+1}) (X_in^U q_t))
    o_t = sum_{j<=i} <T[i, j], a_t> v_j          + Re((X_in^Gamma)^T diag(lam^{i+1}) c^T a_t)
    X_out = lam^C X_in + sum_j lam^{C-1-j} b z_j^T,   z_j = [k_j ; v_j]

T depends only on lags, so it is built once per head and shared by every chunk and batch element.
Nothing of size len x M x (R+P) is formed: the largest tensors are the per-chunk states
`(batch, heads, len/C, M, R+P)` and the intra-chunk `(batch, heads, len/C, C, M)` read-outs.
"""

import math

import torch
import torch.nn.functional as F

from .common import lag_kernel, lam_powers


def chunk(q, k, v, log_lam, b, c, initial_state, chunk_size):
    """Shapes as in `interdomain_attention`; returns (o, final_state)."""
    batch, heads, length, rank = q.shape
    value_dim = v.shape[-1]
    C = chunk_size
    n_chunks = max(1, math.ceil(length / C))
    pad = n_chunks * C - length
    cdtype = log_lam.dtype

    # 1. zero-pad to whole chunks: (batch, heads, n_chunks, C, dim). Padded keys and values are
    #    zero, so they add nothing to the state; padded outputs are cut off at the end.
    q, k, v = (F.pad(x, (0, 0, 0, pad)).view(batch, heads, n_chunks, C, -1) for x in (q, k, v))
    z = torch.cat([k, v], dim=-1).to(cdtype)                              # (b, h, n, C, R+P)

    # 2. Toeplitz lag tensor T[h, i, j, :] = kappa_{i-j}, zero above the diagonal (causality)
    idx = torch.arange(C, device=q.device)
    lag = idx[:, None] - idx[None, :]
    T = lag_kernel(log_lam, b, c, C)[:, lag.clamp(min=0)] * (lag >= 0)[None, :, :, None]  # (h, C, C, M)

    # 3. state entering each chunk, by a serial pass over chunks
    X_in, state = chunk_states(z, log_lam, b, initial_state, length)      # (b, h, n, M, R+P)

    # 4. a_t = U_t q_t: intra-chunk part plus the carried state's part
    lam_next = lam_powers(log_lam, idx + 1)                               # (h, C, M): lam^{i+1}
    scores = torch.einsum("bhnir,bhnjr->bhnij", q, k)
    a = torch.einsum("bhnij,hijm->bhnim", scores, T)                      # (b, h, n, C, M)
    xq = torch.einsum("bhnmr,bhnir->bhnim", X_in[..., :rank], q.to(cdtype))
    a = a + torch.einsum("hkm,bhnim->bhnik", c, lam_next[:, None] * xq).real

    # 5. o_t = Gamma_t^T a_t: intra-chunk part plus the carried state's part
    weights = torch.einsum("hijm,bhnim->bhnij", T, a)
    o = weights @ v                                                       # (b, h, n, C, P)
    ca = torch.einsum("hkm,bhnik->bhnim", c, a.to(cdtype)) * lam_next[:, None]
    o = o + torch.einsum("bhnmp,bhnim->bhnip", X_in[..., rank:], ca).real

    o = o.reshape(batch, heads, n_chunks * C, value_dim)[:, :, :length]
    return o, state


def chunk_states(z, log_lam, b, initial_state, length):
    """Return the state entering each chunk `(batch, heads, n_chunks, M, width)` and the final state.

    z `(batch, heads, n_chunks, C, width)` complex, zero-padded after `length` tokens.
    """
    batch, heads, n_chunks, C, width = z.shape
    idx = torch.arange(C, device=z.device)
    decay_to_end = lam_powers(log_lam, C - 1 - idx) * b[:, None, :]       # (h, C, M): lam^{C-1-j} b
    chunk_update = torch.einsum("hjm,bhnjc->bhnmc", decay_to_end, z)      # (b, h, n, M, width)
    lam_chunk = torch.exp(C * log_lam)[..., None]                         # (h, M, 1)
    state = initial_state
    if state is None:
        state = z.new_zeros(batch, heads, log_lam.shape[-1], width)
    states_in = []
    # unbind once: indexing chunk_update[:, :, n] in the loop would make backward add n_chunks
    # full-size zero tensors, which is quadratic in the length
    for update in chunk_update.unbind(dim=2):
        states_in.append(state)
        state = lam_chunk * state + update
    X_in = torch.stack(states_in, dim=2)
    tail = length - (n_chunks - 1) * C
    if tail < C:
        state = _tail_state(X_in[:, :, -1], z[:, :, -1, :tail], log_lam, b)
    return X_in, state


def _tail_state(state_in, z_tail, log_lam, b):
    """Return the state after a partial last chunk of n tokens: lam^n X_in + sum_j lam^{n-1-j} b z_j^T.

    Taking the padded chunk's end state and dividing by lam^pad would amplify rounding, so the tail
    is summed with its own exponents instead.
    """
    n = z_tail.shape[2]
    idx = torch.arange(n, device=z_tail.device)
    decay_to_end = lam_powers(log_lam, n - 1 - idx) * b[:, None, :]       # (h, n, M)
    lam_n = torch.exp(n * log_lam)[..., None]                             # (h, M, 1)
    return lam_n * state_in + torch.einsum("hjm,bhjc->bhmc", decay_to_end, z_tail)
