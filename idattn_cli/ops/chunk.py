"""Chunkwise interdomain attention: matmuls inside chunks of C tokens, a short serial pass across them.

For the chunk that starts at token t0, with X_in the state after token t0-1, i = t - t0 and the
Toeplitz tensor T[i, j] = kappa_{i-j} (zero for j > i), kappa_tau = Re(c diag(lam^tau) b):

    a_t = sum_{j<=i} (q_t . k_j) T[i, j]        + Re(c diag(lam^{i+1}) (X_in^U q_t))
    o_t = sum_{j<=i} <T[i, j], a_t> v_j          + Re((X_in^Gamma)^T diag(lam^{i+1}) c^T a_t)
    X_out = lam^C X_in + sum_j lam^{C-1-j} b z_j^T,   z_j = [k_j ; v_j]

Complex products run as real matmuls on planes: a complex tensor's mode axis of M becomes 2M real
entries, mode m's real part at 2m and imaginary part at 2m+1 (the memory layout of a complex tensor,
so the element-wise products with lam^{i+1} run as complex ones on a view). Only the real parts the
output needs are formed, at half the work of a complex product:

    Re(c w)             = planes(w) @ c_rows            (C, 2M) @ (2M, M)
    planes(conj(c^T a)) = a @ c_rows^T                  (C, M) @ (M, 2M)
    Re(X^T g)           = planes(conj(g)) @ planes(X)   (C, 2M) @ (2M, P)

with c_rows[2m] = Re c[:, m] and c_rows[2m+1] = -Im c[:, m], and X taken as planes along its
mode axis.

T depends only on lags, so it is built once per head and shared by every chunk and batch element.
Nothing of size len x M x (R+P) is formed: the largest tensors are the per-chunk states
`(batch, heads, len/C, 2M, R+P)` and the intra-chunk `(batch, heads, len/C, C, 2M)` read-outs.
"""

import math

import torch
import torch.nn.functional as F

from .common import lag_kernel, lam_powers


def chunk(q, k, v, log_lam, b, c, initial_state, chunk_size):
    """Shapes as in `interdomain_attention`; returns (o, final_state)."""
    batch, heads, length, rank = q.shape
    M = log_lam.shape[-1]
    C = chunk_size
    n_chunks = max(1, math.ceil(length / C))
    pad = n_chunks * C - length

    # 1. zero-pad to whole chunks: (batch, heads, n_chunks, C, dim). Padded keys and values are
    #    zero, so they add nothing to the state; padded outputs are cut off at the end.
    q, k, v = (F.pad(x, (0, 0, 0, pad)).view(batch, heads, n_chunks, C, -1) for x in (q, k, v))

    # 2. Toeplitz lag tensor T[h, i, j, :] = kappa_{i-j}, zero above the diagonal (causality)
    idx = torch.arange(C, device=q.device)
    lag = idx[:, None] - idx[None, :]
    T = lag_kernel(log_lam, b, c, C)[:, lag.clamp(min=0)] * (lag >= 0)[None, :, :, None]  # (h, C, C, M)

    # 3. state entering each chunk, as planes, by a serial pass over chunks
    X_in, state = chunk_states(torch.cat([k, v], dim=-1), log_lam, b, initial_state, length)  # (b, h, n, 2M, R+P)
    X_u, X_gamma = X_in.split([rank, X_in.shape[-1] - rank], dim=-1)     # split: its backward adds no zeros

    # 4. a_t = U_t q_t: intra-chunk part plus the carried state's part
    lam_next = lam_powers(log_lam, idx + 1)[:, None]                      # (h, 1, C, M): lam^{i+1}
    scores = q @ k.transpose(-1, -2)                                      # (b, h, n, C, C)
    a = torch.einsum("bhnij,hijm->bhnim", scores, T)                      # (b, h, n, C, M)
    xq = times(lam_next, q @ X_u.transpose(-1, -2))                       # (b, h, n, C, 2M)
    c_rows = torch.stack([c.real.mT, -c.imag.mT], dim=-2).reshape(heads, 2 * M, M)
    a = a + per_head(xq, c_rows)

    # 5. o_t = Gamma_t^T a_t: intra-chunk part plus the carried state's part
    weights = torch.einsum("hijm,bhnim->bhnij", T, a)
    o = weights @ v                                                       # (b, h, n, C, P)
    g_conj = times(lam_next.conj(), per_head(a, c_rows.mT))               # conj(lam^{i+1} (.) c^T a)
    o = o + g_conj @ X_gamma

    o = o.reshape(batch, heads, n_chunks * C, -1)[:, :, :length]
    return o, from_planes(state)


def times(lam, x):
    """Return planes(lam (.) x) for complex lam `(..., M)` and planes x `(..., 2M)`."""
    product = lam * torch.view_as_complex(x.unflatten(-1, (-1, 2)))
    return torch.view_as_real(product).flatten(-2)


def to_planes(x):
    """Complex `(..., M, width)` -> real `(..., 2M, width)`, rows 2m and 2m+1 the parts of mode m."""
    return torch.stack([x.real, x.imag], dim=-2).flatten(-3, -2)


def from_planes(x):
    """Real `(..., 2M, width)` -> complex `(..., M, width)`; the inverse of `to_planes`."""
    x = x.unflatten(-2, (-1, 2))
    return torch.complex(x[..., 0, :], x[..., 1, :])


def per_head(x, weight):
    """Return x @ weight[h] for x `(batch, heads, n, C, d)` and weight `(heads, d, e)`.

    Flattening the chunks first lets matmul broadcast the weight over the batch only; broadcast
    over chunks too, it would copy the weight once per chunk.
    """
    batch, heads, n_chunks, C, _ = x.shape
    return (x.reshape(batch, heads, n_chunks * C, -1) @ weight).view(batch, heads, n_chunks, C, -1)


def chunk_states(z, log_lam, b, initial_state, length):
    """Return the planes of the state entering each chunk `(batch, heads, n_chunks, 2M, width)` and
    of the final state `(batch, heads, 2M, width)`.

    z `(batch, heads, n_chunks, C, width)` real, zero-padded after `length` tokens; initial_state
    `(batch, heads, M, width)` complex or None.
    """
    batch, heads, n_chunks, C, width = z.shape
    M = log_lam.shape[-1]
    idx = torch.arange(C, device=z.device)
    decay_to_end = lam_powers(log_lam, C - 1 - idx) * b[:, None, :]       # (h, C, M): lam^{C-1-j} b
    decay_planes = torch.view_as_real(decay_to_end).flatten(-2)           # (h, C, 2M)
    chunk_update = torch.einsum("hjm,bhnjc->bhnmc", decay_planes, z)      # (b, h, n, 2M, width)

    # lam^C X on planes: rows (Xr, Xi) of each mode -> (ar Xr - ai Xi, ar Xi + ai Xr)
    #                                                = same * (Xr, Xi) + swap * (Xi, Xr)
    lam_chunk = torch.exp(C * log_lam)                                    # (h, M)
    same = torch.stack([lam_chunk.real, lam_chunk.real], dim=-1)[..., None]   # (h, M, 2, 1)
    swap = torch.stack([-lam_chunk.imag, lam_chunk.imag], dim=-1)[..., None]
    if initial_state is None:
        state = z.new_zeros(batch, heads, 2 * M, width)
    else:
        state = to_planes(initial_state)
    states_in = []
    # unbind once: indexing chunk_update[:, :, n] in the loop would make backward add n_chunks
    # full-size zero tensors, which is quadratic in the length
    for update in chunk_update.unbind(dim=2):
        states_in.append(state)
        pairs = state.unflatten(-2, (M, 2))                               # (b, h, M, 2, width)
        state = (same * pairs + swap * pairs.flip(-2)).flatten(-3, -2) + update
    X_in = torch.stack(states_in, dim=2)
    tail = length - (n_chunks - 1) * C
    if tail < C:
        state = _tail_state(X_in[:, :, -1], z[:, :, -1, :tail], log_lam, b)
    return X_in, state


def _tail_state(state_in, z_tail, log_lam, b):
    """Return the planes of the state after a partial last chunk of n tokens:
    lam^n X_in + sum_j lam^{n-1-j} b z_j^T.

    Taking the padded chunk's end state and dividing by lam^pad would amplify rounding, so the tail
    is summed with its own exponents instead.
    """
    n = z_tail.shape[2]
    idx = torch.arange(n, device=z_tail.device)
    decay_to_end = lam_powers(log_lam, n - 1 - idx) * b[:, None, :]       # (h, n, M)
    lam_n = torch.exp(n * log_lam)[..., None]                             # (h, M, 1)
    x = lam_n * from_planes(state_in) + torch.einsum("hjm,bhjc->bhmc", decay_to_end, z_tail.to(log_lam.dtype))
    return to_planes(x)
