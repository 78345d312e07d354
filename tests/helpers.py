"""Shared test helpers: tolerances per dtype in one place, and random inputs for the op."""

import math

import torch

# dtype -> (max abs error for float64, max error relative to the reference's max abs value otherwise)
TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 2e-2}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, label: str = "") -> None:
    """float64: max |actual - expected| <= 1e-10. Lower precision: max error / max |expected| <= tol."""
    actual, expected = actual.double(), expected.double()
    assert actual.shape == expected.shape, f"{label}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{label}: non-finite values"
    error = (actual - expected).abs().max().item() if actual.numel() else 0.0
    if dtype == torch.float64:
        assert error <= TOLERANCES[dtype], f"{label}: max abs error {error:.3e} > {TOLERANCES[dtype]:.0e}"
    else:
        scale = max(expected.abs().max().item(), 1e-30)
        assert error / scale <= TOLERANCES[dtype], f"{label}: relative error {error / scale:.3e} > {TOLERANCES[dtype]:.0e}"


def random_op_inputs(batch=2, heads=2, length=65, rank=8, value_dim=6, state_dim=5, dtype=torch.float64, seed=0):
    """Random (q, k, v, log_lam, b, c) shaped like the layer's: unit-norm q, ZOH-discretized b.

    Steps Delta in [0.01, 0.5] make the modes decay and rotate visibly within a few dozen tokens.
    """
    gen = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(batch, heads, length, rank, generator=gen, dtype=torch.float64), dim=-1)
    k = torch.randn(batch, heads, length, rank, generator=gen, dtype=torch.float64)
    v = torch.randn(batch, heads, length, value_dim, generator=gen, dtype=torch.float64)
    dt = torch.exp(torch.empty(heads, 1, dtype=torch.float64).uniform_(math.log(1e-2), math.log(0.5), generator=gen))
    A = torch.complex(-0.5 * torch.ones(heads, state_dim, dtype=torch.float64),
                      3 * torch.randn(heads, state_dim, generator=gen, dtype=torch.float64))
    log_lam = dt * A
    b = (torch.exp(log_lam) - 1) / A * torch.randn(heads, state_dim, generator=gen, dtype=torch.complex128)
    c = torch.randn(heads, state_dim, state_dim, generator=gen, dtype=torch.complex128) / state_dim**0.5
    return tuple(x.to(dtype) for x in (q, k, v)) + (log_lam, b, c)


def random_state(batch=2, heads=2, state_dim=5, width=14, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, heads, state_dim, width, generator=gen, dtype=torch.complex128)


def quick_run_overrides(tmp_path) -> list[str]:
    """Overrides for a training run of a few seconds: one layer, 3 steps, 2 validation batches, files in tmp_path."""
    return [
        "model.n_layers=1", "model.context_length=64", "data.batch_size=4",
        "trainer.max_steps=3", "trainer.val_every_n_steps=3", "trainer.limit_val_batches=2",
        "trainer.final_limit_val_batches=2", "optim.warmup_steps=1",
        f"paths.results_dir={tmp_path / 'results'}", f"paths.output_dir={tmp_path / 'outputs'}",
    ]
