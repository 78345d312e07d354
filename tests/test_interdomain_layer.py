"""The interdomain layer at init and across dtypes (switches and decoding: test_mixers.py)."""

import pytest
import torch

from helpers import assert_close
from idattn_cli.layers import InterdomainAttention


def make_layer(dtype=torch.float64, seed=0, **kwargs):
    torch.manual_seed(seed)
    options = dict(d_model=48, n_heads=3, state_dim=6, chunk_size=16) | kwargs
    return InterdomainAttention(**options).to(dtype)


def random_input(batch=2, length=37, d_model=48, dtype=torch.float64, seed=1):
    return torch.randn(batch, length, d_model, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("d_model,n_heads,state_dim", [(128, 4, 16), (512, 8, 64)])
def test_init_output_scale_flat_over_position(seed, d_model, n_heads, state_dim):
    torch.manual_seed(seed)
    layer = InterdomainAttention(d_model, n_heads, state_dim=state_dim)
    with torch.no_grad():
        y, _ = layer(torch.randn(8, 256, d_model))
    std = y.std(dim=(0, 2))
    assert std[255] <= 4 * std[15], f"std {std[15]:.4f} at t=15, {std[255]:.4f} at t=255"
    assert std[255] >= std[15] / 4, f"std {std[15]:.4f} at t=15, {std[255]:.4f} at t=255"


def test_float32_layer_matches_float64():
    layer64 = make_layer()
    layer32 = make_layer(dtype=torch.float32)
    x = random_input()
    y64, _ = layer64(x)
    y32, _ = layer32(x.float())
    assert y32.dtype == torch.float32
    assert_close(y32, y64, torch.float32, "float32 layer")
