"""The interdomain layer: decode vs forward, state hand-off, causality, state size, init scale."""

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


@pytest.mark.parametrize("feature_dim", [None, 8])
def test_step_matches_forward(feature_dim):
    layer = make_layer(feature_dim=feature_dim)
    x = random_input()
    y, final = layer(x)
    state, steps = None, []
    for t in range(x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        steps.append(y_t)
    assert_close(torch.stack(steps, dim=1), y, torch.float64, "step output")
    assert_close(torch.view_as_real(state.ssm), torch.view_as_real(final.ssm), torch.float64, "ssm state")
    assert_close(state.conv_q, final.conv_q, torch.float64, "conv state")


def test_forward_in_pieces_matches_one_pass():
    layer = make_layer()
    x = random_input(length=70)
    whole, _ = layer(x)
    pieces, state = [], None
    for start, end in [(0, 2), (2, 19), (19, 20), (20, 70)]:
        y, state = layer(x[:, start:end], state)
        pieces.append(y)
    assert_close(torch.cat(pieces, dim=1), whole, torch.float64, "pieces")


def test_scan_backend_matches_chunk():
    layer = make_layer()
    x = random_input()
    y_chunk, _ = layer(x)
    layer.backend = "scan"
    y_scan, _ = layer(x)
    assert_close(y_scan, y_chunk, torch.float64, "scan vs chunk")


def test_changing_token_leaves_earlier_outputs():
    layer = make_layer()
    x = random_input(length=40)
    y, _ = layer(x)
    s = 23
    x2 = x.clone()
    x2[:, s] += 1.0
    y2, _ = layer(x2)
    assert torch.equal(y2[:, :s], y[:, :s])
    assert (y2[:, s] - y[:, s]).abs().max() > 1e-8


@pytest.mark.parametrize("n_heads,state_dim,feature_dim", [(3, 6, None), (4, 16, 8), (2, 64, 64)])
def test_state_size_is_2_m_r_plus_p_per_head(n_heads, state_dim, feature_dim):
    layer = make_layer(d_model=n_heads * 16, n_heads=n_heads, state_dim=state_dim, feature_dim=feature_dim)
    rank, value_dim = feature_dim or 16, 16
    assert layer.state_size() == n_heads * 2 * state_dim * (rank + value_dim)
    _, state = layer(random_input(batch=1, length=5, d_model=n_heads * 16))
    assert state.ssm.shape == (1, n_heads, state_dim, rank + value_dim)
    assert 2 * state.ssm.numel() == layer.state_size()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("d_model,n_heads,state_dim", [(128, 4, 16), (512, 8, 64)])
def test_output_scale_at_init_does_not_grow_with_position(seed, d_model, n_heads, state_dim):
    torch.manual_seed(seed)
    layer = InterdomainAttention(d_model, n_heads, state_dim=state_dim)
    with torch.no_grad():
        y, _ = layer(torch.randn(8, 256, d_model))
    std = y.std(dim=(0, 2))
    assert std[255] <= 4 * std[15], f"std {std[15]:.4f} at t=15, {std[255]:.4f} at t=255"
    assert std[255] >= std[15] / 4, f"std {std[15]:.4f} at t=15, {std[255]:.4f} at t=255"


def test_every_parameter_gets_a_gradient():
    layer = make_layer(dtype=torch.float32)
    y, _ = layer(random_input(dtype=torch.float32))
    y.pow(2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().max() > 0, name


def test_float32_layer_matches_float64():
    layer64 = make_layer()
    layer32 = make_layer(dtype=torch.float32)
    x = random_input()
    y64, _ = layer64(x)
    y32, _ = layer32(x.float())
    assert y32.dtype == torch.float32
    assert_close(y32, y64, torch.float32, "float32 layer")
