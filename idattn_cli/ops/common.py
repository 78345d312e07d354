"""Shared pieces of the interdomain attention backends: argument checks, dtypes, lam powers."""

import torch


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the complex dtype a backend computes in: complex128 for float64, else complex64."""
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def lam_powers(log_lam: torch.Tensor, exponents: torch.Tensor) -> torch.Tensor:
    """Return lam^p = exp(p * log_lam) for each exponent p: `(heads, len(exponents), M)` complex.

    Powers come from log_lam, never from repeated products, so rounding does not compound with p.
    """
    return torch.exp(exponents.to(log_lam.real.dtype)[None, :, None] * log_lam[:, None, :])


def lag_kernel(log_lam: torch.Tensor, b: torch.Tensor, c: torch.Tensor, n_lags: int) -> torch.Tensor:
    """Return kappa_tau = Re(c diag(lam^tau) b) for tau = 0 .. n_lags-1: `(heads, n_lags, M)` real."""
    lags = torch.arange(n_lags, device=log_lam.device)
    return torch.einsum("hkm,htm->htk", c, lam_powers(log_lam, lags) * b[:, None, :]).real


def check_inputs(q, k, v, log_lam, b, c, initial_state) -> None:
    """Raise ValueError unless the arguments have the shapes and dtypes of the op's contract."""
    if q.dim() != 4 or k.shape != q.shape:
        raise ValueError(f"q and k must share the shape (batch, heads, len, R); got {tuple(q.shape)} and {tuple(k.shape)}")
    batch, heads, length, _ = q.shape
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must have shape (batch, heads, len, P) = ({batch}, {heads}, {length}, P); got {tuple(v.shape)}")
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a float tensor; got {x.dtype}")
    if not (log_lam.is_complex() and b.is_complex() and c.is_complex()):
        raise ValueError("log_lam, b and c must be complex tensors")
    state_dim = log_lam.shape[-1]
    if log_lam.shape != (heads, state_dim) or b.shape != (heads, state_dim):
        raise ValueError(f"log_lam and b must have shape (heads, M) = ({heads}, M); got {tuple(log_lam.shape)} and {tuple(b.shape)}")
    if c.shape != (heads, state_dim, state_dim):
        raise ValueError(f"c must have shape (heads, M, M) = ({heads}, {state_dim}, {state_dim}); got {tuple(c.shape)}")
    state_shape = (batch, heads, state_dim, q.shape[-1] + v.shape[-1])
    if initial_state is not None and tuple(initial_state.shape) != state_shape:
        raise ValueError(f"initial_state must have shape (batch, heads, M, R+P) = {state_shape}; got {tuple(initial_state.shape)}")
