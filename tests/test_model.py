"""The decoder LM and the training module's optimizer and schedule."""

import math

import pytest
import torch

from helpers import assert_close
from idattn_cli.models import DecoderLM
from idattn_cli.training.module import LMModule, warmup_cosine

OPTIM = dict(lr=3e-3, min_lr=1e-5, ssm_lr_cap=1e-3, weight_decay=0.1, betas=[0.9, 0.95], eps=1e-8, warmup_steps=10)


def make_model(dtype=torch.float32, n_layers=2, mixer="interdomain"):
    torch.manual_seed(0)
    mixer_kwargs = {} if mixer == "softmax" else dict(state_dim=4, chunk_size=16)
    return DecoderLM(vocab_size=256, d_model=32, n_layers=n_layers, n_heads=2, mixer=mixer,
                     mixer_kwargs=mixer_kwargs, ffn_multiple_of=32).to(dtype)


@pytest.mark.parametrize("mixer", ["interdomain", "s4d", "softmax"])
def test_token_by_token_decode_matches_forward(mixer):
    model = make_model(torch.float64, mixer=mixer)
    tokens = torch.randint(0, 256, (2, 29), generator=torch.Generator().manual_seed(0))
    logits, _ = model(tokens)
    states, steps = None, []
    for t in range(tokens.shape[1]):
        step_logits, states = model.step(tokens[:, t], states)
        steps.append(step_logits)
    assert_close(torch.stack(steps, dim=1), logits, torch.float64, "decode logits")


@pytest.mark.parametrize("mixer", ["interdomain", "s4d", "softmax"])
@pytest.mark.parametrize("prefill_chunk_size", [None, 7, 16])
def test_prefill_matches_forward_then_decodes_on(mixer, prefill_chunk_size):
    """Prefill whole or in pieces (7 leaves a tail of 1 of 29) gives the forward's last logits, and
    its states decode the next token as the forward over the longer prompt does."""
    model = make_model(torch.float64, mixer=mixer)
    tokens = torch.randint(0, 256, (2, 30), generator=torch.Generator().manual_seed(1))
    logits, _ = model(tokens)
    last, states = model.prefill(tokens[:, :29], prefill_chunk_size=prefill_chunk_size)
    assert last.shape == (2, 256)
    assert_close(last, logits[:, 28], torch.float64, "prefill logits")
    next_logits, _ = model.step(tokens[:, 29], states)
    assert_close(next_logits, logits[:, 29], torch.float64, "decode after prefill")


def test_changing_token_leaves_earlier_logits():
    model = make_model()
    tokens = torch.randint(0, 256, (1, 40), generator=torch.Generator().manual_seed(0))
    logits, _ = model(tokens)
    changed = tokens.clone()
    changed[0, 17] = (changed[0, 17] + 1) % 256
    logits2, _ = model(changed)
    assert torch.equal(logits2[:, :17], logits[:, :17])
    assert not torch.equal(logits2[:, 17], logits[:, 17])


def test_swiglu_width_and_residual_init():
    model = DecoderLM(256, 768, 12, 12, "interdomain", dict(state_dim=8))
    assert model.blocks[0].ffn.w1.out_features == 2048   # (2/3) 4 768 = 2048
    std_out = model.blocks[0].mixer.out_proj.weight.std().item()
    assert std_out == pytest.approx(0.02 / math.sqrt(24), rel=0.05)
    assert model.blocks[0].mixer.q_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_unknown_mixer_raises():
    with pytest.raises(ValueError, match="unknown mixer 'nope'; valid mixers: interdomain, s4d, softmax"):
        DecoderLM(256, 32, 1, 2, "nope")


def test_optimizer_groups_cover_parameters_once():
    model = make_model()
    optimizer = LMModule(model, OPTIM, max_steps=100).configure_optimizers()["optimizer"]
    groups = {group["name"]: group for group in optimizer.param_groups}
    seen = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    ssm_ids = {id(p) for p in model.ssm_parameters()}
    assert {id(p) for p in groups["ssm"]["params"]} == ssm_ids
    assert groups["ssm"]["initial_lr"] == 1e-3
    assert groups["ssm"]["weight_decay"] == 0.0
    assert groups["decay"]["initial_lr"] == 3e-3
    assert groups["decay"]["weight_decay"] == 0.1
    assert groups["no_decay"]["weight_decay"] == 0.0
    assert id(model.blocks[0].mixer.ssm.C) in ssm_ids
    assert id(model.blocks[0].mixer.k_norm.bias) in ssm_ids


def test_s4d_readout_weight_is_an_ssm_parameter():
    model = make_model(mixer="s4d")
    ssm_ids = {id(p) for p in model.ssm_parameters()}
    assert id(model.blocks[0].mixer.readout_weight) in ssm_ids
    assert model.blocks[0].mixer.q_proj is None


def test_warmup_cosine_schedule():
    assert warmup_cosine(0, 10, 100, 0.01) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100, 0.01) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100, 0.01) == pytest.approx(0.505)
    assert warmup_cosine(100, 10, 100, 0.01) == pytest.approx(0.01)
    assert warmup_cosine(500, 10, 100, 0.01) == pytest.approx(0.01)
