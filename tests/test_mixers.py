"""Every token mixer and every switch value: decode vs forward, state hand-off, backends, gradients."""

import pytest
import torch

from helpers import assert_close
from idattn_cli.layers import MIXERS

D_MODEL, N_HEADS = 48, 4

# (mixer, switches): every value of every interdomain switch appears at least once
CASES = [
    ("interdomain", {}),
    ("interdomain", {"input": "generic"}),
    ("interdomain", {"readout": "linear"}),
    ("interdomain", {"input": "generic", "readout": "linear", "rope": False}),
    ("interdomain", {"rope": False}),
    ("interdomain", {"gate": True}),
    ("interdomain", {"feature_map": "elu"}),
    ("interdomain", {"feature_map": "relu"}),
    ("interdomain", {"feature_map": "identity"}),
    ("interdomain", {"feature_map": "random_fourier"}),
    ("interdomain", {"feature_map": "random_fourier", "random_feature_kind": "trig"}),
    ("interdomain", {"feature_map": "taylor", "feature_dim": 4}),
    ("interdomain", {"readout_matrix": "diagonal"}),
    ("interdomain", {"kv_groups": 1}),
    ("interdomain", {"kv_groups": 2}),
    ("interdomain", {"short_conv": False}),
    ("interdomain", {"readout": "linear", "short_conv": False, "gate": True}),
    ("s4d", {}),
    ("s4d", {"rope": True}),
    ("softmax", {}),
]
IDS = [f"{mixer}-" + ("-".join(f"{k}={v}" for k, v in switches.items()) or "default") for mixer, switches in CASES]
FIXED_STATE = [(mixer, switches) for mixer, switches in CASES if mixer != "softmax"]


def make_mixer(mixer, switches, dtype=torch.float64, **extra):
    torch.manual_seed(0)
    sizes = {} if mixer == "softmax" else {"state_dim": 6, "chunk_size": 16}
    return MIXERS[mixer](D_MODEL, N_HEADS, **sizes, **switches, **extra).to(dtype)


def random_input(batch=2, length=37, dtype=torch.float64, seed=1):
    return torch.randn(batch, length, D_MODEL, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("mixer,switches", CASES, ids=IDS)
def test_step_matches_forward(mixer, switches):
    layer = make_mixer(mixer, switches)
    x = random_input()
    y, _ = layer(x)
    state, steps = None, []
    for t in range(x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        steps.append(y_t)
    assert_close(torch.stack(steps, dim=1), y, torch.float64, "step vs forward")


@pytest.mark.parametrize("mixer,switches", CASES, ids=IDS)
def test_state_handoff_at_uneven_splits(mixer, switches):
    layer = make_mixer(mixer, switches)
    x = random_input(length=53)
    whole, _ = layer(x)
    pieces, state = [], None
    for start, end in [(0, 1), (1, 18), (18, 19), (19, 53)]:
        y, state = layer(x[:, start:end], state)
        pieces.append(y)
    assert_close(torch.cat(pieces, dim=1), whole, torch.float64, "pieces vs one pass")


@pytest.mark.parametrize("mixer,switches", FIXED_STATE, ids=[i for i, c in zip(IDS, CASES) if c[0] != "softmax"])
def test_backends_agree(mixer, switches):
    x = random_input()
    outputs = {}
    for backend in ("scan", "chunk", "fft"):
        layer = make_mixer(mixer, switches, backend=backend)
        outputs[backend], _ = layer(x)
    assert_close(outputs["chunk"], outputs["scan"], torch.float64, "chunk vs scan")
    assert_close(outputs["fft"], outputs["scan"], torch.float64, "fft vs scan")


@pytest.mark.parametrize("mixer,switches", CASES, ids=IDS)
def test_every_parameter_gets_a_gradient(mixer, switches):
    layer = make_mixer(mixer, switches, dtype=torch.float32)
    y, _ = layer(random_input(dtype=torch.float32))
    y.pow(2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None, f"{name} has no gradient"
        assert p.grad.abs().max() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("mixer,switches", CASES, ids=IDS)
def test_changing_token_leaves_earlier_outputs(mixer, switches):
    layer = make_mixer(mixer, switches)
    x = random_input(length=40)
    y, _ = layer(x)
    s = 23
    x2 = x.clone()
    x2[:, s] += 1.0
    y2, _ = layer(x2)
    assert torch.allclose(y2[:, :s], y[:, :s], rtol=0, atol=1e-13)
    assert (y2[:, s] - y[:, s]).abs().max() > 1e-8


@pytest.mark.parametrize("switches", [{}, {"feature_dim": 8}, {"kv_groups": 2}, {"feature_map": "taylor", "feature_dim": 4}])
def test_interdomain_state_size_is_hand_count(switches):
    layer = make_mixer("interdomain", switches)
    groups = switches.get("kv_groups", N_HEADS)
    rank = switches.get("feature_dim", D_MODEL // N_HEADS)
    if switches.get("feature_map") == "taylor":
        rank = 1 + rank + rank * rank
    value_dim, state_dim = D_MODEL // N_HEADS, 6
    assert layer.state_size() == groups * 2 * state_dim * (rank + value_dim)
    _, state = layer(random_input(length=3))
    assert 2 * state.ssm[0].numel() == layer.state_size()


def test_s4d_and_interdomain_are_iso_state():
    for feature_dim in (None, 8):
        interdomain = make_mixer("interdomain", {"feature_dim": feature_dim})
        s4d = make_mixer("s4d", {"feature_dim": feature_dim})
        assert s4d.state_size() == interdomain.state_size()


def test_softmax_state_grows_with_context():
    layer = make_mixer("softmax", {})
    _, cache = layer(random_input(length=10))
    assert 2 * cache.keys[0].numel() == layer.state_size(10)
    assert layer.state_size(20) == 2 * layer.state_size(10)


@pytest.mark.parametrize("switches,message", [
    ({"input": "both"}, "unknown input 'both'"),
    ({"readout": "linear", "kv_groups": 2}, "kv_groups needs readout=query"),
    ({"kv_groups": 3}, "kv_groups (3) must divide n_heads (4)"),
    ({"feature_map": "cosine"}, "unknown feature map 'cosine'"),
    ({"readout_matrix": "low_rank"}, "unknown readout_matrix 'low_rank'"),
])
def test_invalid_switches_raise(switches, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_mixer("interdomain", switches)
