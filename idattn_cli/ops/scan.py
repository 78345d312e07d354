"""Token-by-token scan of interdomain attention: the readable reference and the decoding path.

Per head, with z_t = [k_t ; v_t] and the state X complex (M, R+P):

    X_t = lam (.) X_{t-1} + b z_t^T
    a_t = U_t q_t         = Re(c (X_t^U q_t))             (M,)   U_t = Re(c X_t)[:, :R]
    o_t = Gamma_t^T a_t   = Re((X_t^Gamma)^T (c^T a_t))   (P,)   Gamma_t = Re(c X_t)[:, R:]

Both read-outs use associativity because q_t and a_t are real, so a step costs O(M (R+P) + M^2) per
head and never forms the M x (R+P) matrix Re(c X_t).
"""

import torch


def scan_step(state, q_t, k_t, v_t, lam, b, c):
    """Advance the state by one token and read it out.

    state `(batch, heads, M, R+P)` complex; q_t, k_t `(batch, heads, R)`; v_t `(batch, heads, P)`;
    lam, b `(heads, M)` complex; c `(heads, M, M)` complex. Returns (o_t `(batch, heads, P)`, state).
    """
    rank = q_t.shape[-1]
    z_t = torch.cat([k_t, v_t], dim=-1).to(state.dtype)               # (batch, heads, R+P)

    # 1. recurrence
    state = lam[..., None] * state + b[..., None] * z_t[:, :, None, :]

    # 2. a_t = Re(c (X^U q_t))
    xq = torch.einsum("bhmr,bhr->bhm", state[..., :rank], q_t.to(state.dtype))
    a_t = torch.einsum("hkm,bhm->bhk", c, xq).real                     # (batch, heads, M)

    # 3. o_t = Re((X^Gamma)^T (c^T a_t))
    ca = torch.einsum("hkm,bhk->bhm", c, a_t.to(state.dtype))
    o_t = torch.einsum("bhmp,bhm->bhp", state[..., rank:], ca).real    # (batch, heads, P)
    return o_t, state


def scan(q, k, v, log_lam, b, c, initial_state):
    """Run `scan_step` over the sequence. Shapes as in `interdomain_attention`; returns (o, final_state)."""
    batch, heads, _, rank = q.shape
    state = initial_state
    if state is None:
        state = q.new_zeros(batch, heads, log_lam.shape[-1], rank + v.shape[-1], dtype=log_lam.dtype)
    lam = torch.exp(log_lam)

    outputs = []
    # unbind, not q[:, :, t]: backward of each index would add a zero tensor of the whole input
    for q_t, k_t, v_t in zip(q.unbind(2), k.unbind(2), v.unbind(2)):
        o_t, state = scan_step(state, q_t, k_t, v_t, lam, b, c)
        outputs.append(o_t)
    o = torch.stack(outputs, dim=2) if outputs else v.new_zeros(v.shape)
    return o, state
