"""Paper-scale presets against table 3 of Kiyohara et al., arXiv:2605.24330, counted on the meta device."""

import pytest

from idattn_cli.config import compose_config
from idattn_cli.recipes.info import info

SCALES = ["125m", "350m", "760m", "1.3b"]
PAPER_PARAMS = {
    "softmax": [134_105_856, 373_867_520, 777_856_512, 1_345_423_360],
    "interdomain": [135_416_208, 377_360_768, 781_498_752, 1_352_406_784],
    "s4d": [135_425_424, 377_385_344, 781_523_328, 1_352_455_936],
}


def model_info(scale, mixer):
    return info(compose_config([f"model={scale}", f"mixer={mixer}"]))


@pytest.mark.parametrize("index,scale", list(enumerate(SCALES)))
def test_softmax_parameter_count_is_exact(index, scale):
    assert model_info(scale, "softmax")["n_params"] == PAPER_PARAMS["softmax"][index]


@pytest.mark.parametrize("mixer", ["interdomain", "s4d"])
@pytest.mark.parametrize("index,scale", list(enumerate(SCALES)))
def test_fixed_state_parameter_count_within_half_percent(index, scale, mixer):
    ours, paper = model_info(scale, mixer)["n_params"], PAPER_PARAMS[mixer][index]
    assert abs(ours - paper) / paper <= 0.005, f"{ours:,} vs paper {paper:,}"


@pytest.mark.parametrize("scale", SCALES)
def test_s4d_adds_the_linear_readout_to_interdomain(scale):
    index = SCALES.index(scale)
    paper_gap = PAPER_PARAMS["s4d"][index] - PAPER_PARAMS["interdomain"][index]
    assert model_info(scale, "s4d")["n_params"] - model_info(scale, "interdomain")["n_params"] == paper_gap


@pytest.mark.parametrize("scale", SCALES)
def test_interdomain_and_s4d_iso_state(scale):
    interdomain, s4d = model_info(scale, "interdomain"), model_info(scale, "s4d")
    cfg = compose_config([f"model={scale}"])
    heads, state_dim = cfg.model.n_heads, cfg.model.state_dim
    head_dim = cfg.model.d_model // heads
    assert interdomain["state_size_per_layer"] == s4d["state_size_per_layer"]
    assert interdomain["state_size_per_layer"] == heads * 2 * (head_dim + head_dim) * state_dim


def test_1_3b_state_is_524288_per_layer():
    assert model_info("1.3b", "interdomain")["state_size_per_layer"] == 524_288
    assert model_info("1.3b", "softmax")["state_size_per_layer"] == 2 * 2048 * 4096


def test_decode_flops_use_associativity():
    numbers = model_info("1.3b", "interdomain")
    assert numbers["flops_per_token_decode"] < numbers["flops_per_token_decode_forming_y"]
