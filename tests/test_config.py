"""Config composition and validation (compose once, like lightning-hydra-template's fixtures)."""

import pytest

from idattn_cli.config import compose_config, group_options
from idattn_cli.errors import UserError


@pytest.fixture(scope="module")
def default_cfg():
    return compose_config([])


def test_default_composition(default_cfg):
    assert default_cfg.model.name == "tiny"
    assert default_cfg.mixer.name == "interdomain"
    assert default_cfg.data.name == "embedded"
    assert default_cfg.tokenizer.name == "byte"
    assert default_cfg.tokenizer.vocab_size == 256
    assert default_cfg.trainer.precision is None


def test_recipe_overrides_defaults():
    cfg = compose_config(["recipe=smoke"])
    assert cfg.trainer.max_steps == 20
    assert cfg.model.n_layers == 2
    assert "smoke" in group_options("recipe")


def test_paper_preset_sets_recipe_values():
    cfg = compose_config(["model=125m"])
    assert cfg.model.d_model == 768
    assert cfg.model.vocab_size == 32000
    assert cfg.optim.lr == 3e-3
    assert cfg.optim.warmup_steps == 716
    assert cfg.data.batch_size * cfg.trainer.accumulate_grad_batches * cfg.model.context_length == 524_288
    assert cfg.mixer.state_dim == 64


def test_cube_recipe_selects_mixer_and_switches():
    cfg = compose_config(["recipe=cube_generic_query_norope"])
    assert cfg.mixer.name == "interdomain"
    assert cfg.mixer.input == "generic"
    assert cfg.mixer.readout == "query"
    assert cfg.mixer.rope is False
    assert compose_config(["recipe=cube_softmax"]).mixer.name == "softmax"
    assert compose_config(["recipe=cube_s4d_rope"]).mixer.rope is True


def test_command_line_overrides_recipe():
    cfg = compose_config(["recipe=smoke", "trainer.max_steps=7"])
    assert cfg.trainer.max_steps == 7


@pytest.mark.parametrize("override,message", [
    ("mixer=nope", "invalid choice 'nope' for mixer; valid choices: interdomain, s4d, softmax"),
    ("model=huge", "invalid choice 'huge' for model; valid choices: 1.3b, 125m, 350m, 760m, small, tiny"),
    ("recipe=nah", "invalid choice 'nah' for recipe; valid choices: cube_dualkv_linear,"),
    ("model.foo=1", "unknown config key 'model.foo'; valid keys under 'model': context_length, d_model"),
    ("foo=1", "unknown config key 'foo'; valid keys at the top level: ablate, data, eval, extrapolate, mixer"),
    ("trainer.max_steps=abc", "invalid value 'abc' for trainer.max_steps; set it to a positive integer"),
    ("trainer.max_steps=0", "invalid value 0 for trainer.max_steps; set it to a positive integer"),
    ("optim.lr=-1", "invalid value -1 for optim.lr; set it to a positive number"),
    ("mixer.chunk_size=48", "invalid value 48 for mixer.chunk_size; set it to a power of two"),
    ("model.n_heads=3", "model.d_model=128 is not divisible by model.n_heads=3"),
    ("model=[a", "invalid override syntax"),
    ("mixer.backend=fast", "invalid value 'fast' for mixer.backend; set it to one of chunk, fft, scan"),
    ("mixer.rope=maybe", "invalid value 'maybe' for mixer.rope; set it to true or false"),
    ("mixer.kv_groups=3", "invalid value 3 for mixer.kv_groups; set it to a divisor of model.n_heads=4"),
    ("model.vocab_size=100", "model.vocab_size=100 is smaller than the tokenizer's vocabulary (256)"),
    ("mixer.feature_dim=0", "invalid value 0 for mixer.feature_dim; set it to a positive integer"),
    ("mixer.feature_dim=-4", "invalid value -4 for mixer.feature_dim"),
    ("mixer.feature_dim=5", "the RoPE width 5 (mixer.feature_dim, or d_model / n_heads) is odd"),
    ("mixer.dt_min=1", "invalid step range mixer.dt_min=1, mixer.dt_max=0.1"),
])
def test_bad_overrides_give_one_line_errors(override, message):
    with pytest.raises(UserError) as error:
        compose_config([override])
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_trig_features_need_even_width():
    overrides = ["mixer.feature_map=random_fourier", "mixer.random_feature_kind=trig", "mixer.feature_dim=3",
                 "mixer.rope=false"]
    with pytest.raises(UserError, match="trig random features need an even feature_dim"):
        compose_config(overrides)


def test_invalid_precision_rejected():
    with pytest.raises(UserError, match="invalid value 'fp8' for trainer.precision"):
        compose_config(["trainer.precision=fp8"])
