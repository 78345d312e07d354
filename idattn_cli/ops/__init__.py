"""The interdomain attention op: one definition, three backends (`scan`, `chunk`, `fft`).

Per head, with feature-mapped queries q_t (R), normalized keys k_t (R), values v_t (P) and a
complex diagonal recurrence of M modes (lam = exp(log_lam), discretized input b, read-out c):

    X_t = lam (.) X_{t-1} + b [k_t ; v_t]^T        X complex (M, R+P)
    Y_t = Re(c X_t),  U_t = Y_t[:, :R],  Gamma_t = Y_t[:, R:]
    o_t = Gamma_t^T (U_t q_t)                       (P,)

Shapes: q, k `(batch, heads, len, R)`, v `(batch, heads, len, P)`, log_lam and b `(heads, M)` complex,
c `(heads, M, M)` complex, state `(batch, heads, M, R+P)` complex.
"""

import torch

from .chunk import chunk
from .common import check_inputs, complex_dtype
from .fft import fft
from .scan import scan, scan_step

BACKENDS = ("chunk", "fft", "scan")

__all__ = ["BACKENDS", "interdomain_attention", "scan_step"]


def interdomain_attention(
    q,
    k,
    v,
    log_lam,
    b,
    c,
    *,
    backend="chunk",
    chunk_size=64,
    initial_state=None,
    output_final_state=False,
):
    """Compute o `(batch, heads, len, P)`, and the final state if `output_final_state`.

    Any float dtype in gives the same dtype out. Inputs below float32 (bf16, fp16) are computed in
    float32/complex64 with autocast off, because the state sums many terms of similar size.
    `initial_state` is the state after the token before q[:, :, 0]; a sequence split anywhere and
    run piece by piece with the state handed over gives the output of one pass.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend == "chunk" and (chunk_size < 1 or chunk_size & (chunk_size - 1)):
        raise ValueError(f"chunk_size must be a power of two; got {chunk_size}")
    check_inputs(q, k, v, log_lam, b, c, initial_state)

    out_dtype = q.dtype
    real_dtype = torch.float64 if out_dtype == torch.float64 else torch.float32
    cdtype = complex_dtype(real_dtype)
    with torch.autocast(q.device.type, enabled=False):
        q, k, v = (x.to(real_dtype) for x in (q, k, v))
        log_lam, b, c = (x.to(cdtype) for x in (log_lam, b, c))
        if initial_state is not None:
            initial_state = initial_state.to(cdtype)
        if backend == "scan":
            o, state = scan(q, k, v, log_lam, b, c, initial_state)
        elif backend == "fft":
            o, state = fft(q, k, v, log_lam, b, c, initial_state)
        else:
            o, state = chunk(q, k, v, log_lam, b, c, initial_state, chunk_size)

    o = o.to(out_dtype)
    return (o, state) if output_final_state else o
