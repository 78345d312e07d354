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


def test_command_line_overrides_recipe():
    cfg = compose_config(["recipe=smoke", "trainer.max_steps=7"])
    assert cfg.trainer.max_steps == 7


@pytest.mark.parametrize("override,message", [
    ("mixer=nope", "invalid choice 'nope' for mixer; valid choices: interdomain"),
    ("model=huge", "invalid choice 'huge' for model; valid choices: tiny"),
    ("recipe=nah", "invalid choice 'nah' for recipe; valid choices: smoke"),
    ("model.foo=1", "unknown config key 'model.foo'; valid keys under 'model': context_length, d_model"),
    ("foo=1", "unknown config key 'foo'; valid keys at the top level: data, mixer"),
    ("trainer.max_steps=abc", "invalid value 'abc' for trainer.max_steps; set it to a positive integer"),
    ("trainer.max_steps=0", "invalid value 0 for trainer.max_steps; set it to a positive integer"),
    ("optim.lr=-1", "invalid value -1 for optim.lr; set it to a positive number"),
    ("mixer.chunk_size=48", "invalid value 48 for mixer.chunk_size; set it to a power of two"),
    ("model.n_heads=3", "model.d_model=128 is not divisible by model.n_heads=3"),
    ("model=[a", "invalid override syntax"),
])
def test_bad_overrides_give_one_line_errors(override, message):
    with pytest.raises(UserError) as error:
        compose_config([override])
    assert message in str(error.value)
    assert "\n" not in str(error.value)
