"""Compose the run config from conf/ (+ a preset from recipes/) with Hydra, and validate it.

Hydra's own errors are multi-line; `compose_config` turns each into one line that names the bad
value and the valid choices, raised as `UserError`.
"""

import os
import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError

CONF_ENV = "IDATTN_CONF_DIR"


def conf_dir() -> Path:
    """Return the config folder: $IDATTN_CONF_DIR, else conf/ beside the package (editable install)."""
    path = Path(os.environ.get(CONF_ENV) or Path(__file__).resolve().parent.parent / "conf")
    if not (path / "config.yaml").is_file():
        raise UserError(f"config folder {path} has no config.yaml; install with `pip install -e .` "
                        f"from the repository, or set {CONF_ENV} to its conf/ folder")
    return path


def group_options(group: str) -> list[str]:
    """Names of the options of a config group (the YAML files in conf/<group>/)."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def compose_config(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """Compose conf/ with the overrides, resolve interpolations and validate values."""
    overrides = list(overrides or [])
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            cfg = compose(config_name, overrides=overrides)
        OmegaConf.resolve(cfg)
    except MissingConfigException as error:
        raise UserError(_missing_option_message(str(error))) from error
    except OverrideParseException as error:
        first_line = str(error).splitlines()[0]
        raise UserError(f"invalid override syntax ({first_line}); write overrides as key=value, "
                        "e.g. trainer.max_steps=200 or mixer=interdomain") from error
    except ConfigCompositionException as error:
        raise UserError(_unknown_key_message(error, overrides, config_name)) from error
    except OmegaConfBaseException as error:
        raise UserError(f"invalid config: {str(error).splitlines()[0]}") from error
    validate_config(cfg)
    return cfg


def _missing_option_message(text: str) -> str:
    found = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    if not found:
        return f"invalid config: {text.splitlines()[0]}"
    group, option = found.groups()
    choices = ", ".join(group_options(group)) or "(none)"
    return f"invalid choice {option!r} for {group}; valid choices: {choices}"


def _unknown_key_message(error, overrides, config_name) -> str:
    found = re.search(r"full_key: (\S+)", str(error.__cause__ or ""))
    sweep = re.search(r"Ambiguous value for argument '([^']+)'", str(error))
    if sweep:
        return (f"{sweep.group(1)} is a sweep (comma-separated values); add -m to run one job per value, "
                "or write a list in brackets, e.g. 'optim.betas=[0.9,0.95]'")
    if not found:
        return f"invalid override: {str(error).splitlines()[0]}"
    key = found.group(1)
    parent, _, leaf = key.rpartition(".")
    others = [o for o in overrides if not o.lstrip("+~").startswith(key)]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        base = compose(config_name, overrides=others)
    node = OmegaConf.select(base, parent) if parent else base
    valid = ", ".join(sorted(node.keys())) if isinstance(node, DictConfig) else "(none)"
    where = f"under {parent!r}" if parent else "at the top level"
    return f"unknown config key {key!r}; valid keys {where}: {valid}"


_POSITIVE_INT = (int, lambda x: x > 0, "a positive integer")
_NON_NEGATIVE_INT = (int, lambda x: x >= 0, "a non-negative integer")
_POSITIVE = (float, lambda x: x > 0, "a positive number")
_NON_NEGATIVE = (float, lambda x: x >= 0, "a non-negative number")
_POWER_OF_TWO = (int, lambda x: x > 0 and x & (x - 1) == 0, "a power of two such as 64")
_BOOLEAN = (bool, lambda x: True, "true or false")


def _one_of(*values):
    return (str, lambda x: x in values, "one of " + ", ".join(values))

# config path -> (expected type, predicate, what the value must be)
_CHECKS = {
    "seed": _NON_NEGATIVE_INT,
    "model.d_model": _POSITIVE_INT,
    "model.n_layers": _POSITIVE_INT,
    "model.n_heads": _POSITIVE_INT,
    "model.context_length": _POSITIVE_INT,
    "model.state_dim": _POSITIVE_INT,
    "mixer.chunk_size": _POWER_OF_TWO,
    "mixer.backend": _one_of("chunk", "fft", "scan"),
    "mixer.input": _one_of("dual_kv", "generic"),
    "mixer.readout": _one_of("query", "linear"),
    "mixer.feature_map": _one_of("silu_l2", "elu", "relu", "identity", "random_fourier", "taylor"),
    "mixer.random_feature_kind": _one_of("positive", "trig"),
    "mixer.readout_matrix": _one_of("full", "diagonal"),
    "mixer.rope": _BOOLEAN,
    "mixer.gate": _BOOLEAN,
    "mixer.short_conv": _BOOLEAN,
    "mixer.conv_size": _POSITIVE_INT,
    "data.batch_size": _POSITIVE_INT,
    "trainer.max_steps": _POSITIVE_INT,
    "trainer.val_every_n_steps": _POSITIVE_INT,
    "trainer.log_every_n_steps": _POSITIVE_INT,
    "trainer.checkpoint_every_n_steps": _POSITIVE_INT,
    "trainer.num_nodes": _POSITIVE_INT,
    "trainer.skip_nonfinite": _BOOLEAN,
    "optim.lr": _POSITIVE,
    "optim.min_lr": _NON_NEGATIVE,
    "optim.ssm_lr_cap": _POSITIVE,
    "optim.weight_decay": _NON_NEGATIVE,
    "optim.warmup_steps": _NON_NEGATIVE_INT,
}


# Lightning 2's precision names; fp8 and the plugin-based ones need a custom Trainer, which idattn does not build
PRECISIONS = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true", "64-true", "64")


def validate_config(cfg: DictConfig) -> None:
    """Raise UserError for the first value of the wrong type or out of range."""
    for path, (kind, is_valid, requirement) in _CHECKS.items():
        group, _, key = path.rpartition(".")
        if group and key not in cfg[group]:  # a key that only some options of a group have
            continue
        value = OmegaConf.select(cfg, path)
        if kind in (str, bool):
            typed = isinstance(value, kind)
        else:
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            typed = is_number and (kind is float or isinstance(value, int))
        if not typed or not is_valid(value):
            raise UserError(f"invalid value {value!r} for {path}; set it to {requirement}")
    devices = cfg.trainer.get("devices")
    if not (devices == "auto" or (isinstance(devices, int) and not isinstance(devices, bool) and devices > 0)
            or OmegaConf.is_list(devices)):
        raise UserError(f"invalid value {devices!r} for trainer.devices; set it to auto, a positive number of "
                        "devices (processes on CPU), or a list of GPU indices such as [0,1]")
    resume = cfg.get("resume")
    if resume is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(resume)):
        raise UserError(f"invalid value {resume!r} for resume; set it to last or to a run id such as "
                        "20261204-204500-3fa2c1 (see `idattn results runs` and the folders in outputs/)")
    precision = cfg.trainer.get("precision")
    if precision is not None and str(precision) not in PRECISIONS:
        raise UserError(f"invalid value {precision!r} for trainer.precision; set it to one of "
                        f"{', '.join(PRECISIONS)}, or null for bf16-mixed on a GPU and 32-true on CPU")
    vocab = cfg.model.get("vocab_size")
    if vocab is not None and vocab < cfg.tokenizer.vocab_size:
        raise UserError(f"model.vocab_size={vocab} is smaller than the tokenizer's vocabulary "
                        f"({cfg.tokenizer.vocab_size}); set model.vocab_size=null to use the tokenizer's")
    _validate_mixer_sizes(cfg.mixer, head_dim=cfg.model.d_model // max(1, cfg.model.n_heads))
    groups = cfg.mixer.get("kv_groups")
    if groups is not None and (not isinstance(groups, int) or groups < 1 or cfg.model.n_heads % groups):
        raise UserError(f"invalid value {groups!r} for mixer.kv_groups; set it to a divisor of "
                        f"model.n_heads={cfg.model.n_heads}, or null for one memory per head")
    if groups is not None and cfg.mixer.get("readout") == "linear" and groups != cfg.model.n_heads:
        raise UserError("mixer.kv_groups needs mixer.readout=query; set mixer.kv_groups=null")
    if cfg.model.d_model % cfg.model.n_heads:
        raise UserError(f"model.d_model={cfg.model.d_model} is not divisible by model.n_heads={cfg.model.n_heads}; "
                        "choose n_heads that divides d_model")


def _validate_mixer_sizes(mixer: DictConfig, head_dim: int) -> None:
    feature_dim = mixer.get("feature_dim")
    if feature_dim is not None and (not isinstance(feature_dim, int) or isinstance(feature_dim, bool) or feature_dim < 1):
        raise UserError(f"invalid value {feature_dim!r} for mixer.feature_dim; set it to a positive integer, "
                        "or null for the head dimension")
    if mixer.get("feature_map") == "random_fourier" and mixer.get("random_feature_kind") == "trig" \
            and feature_dim is not None and feature_dim % 2:
        raise UserError(f"mixer.feature_dim={feature_dim} is odd, but trig random features need an even "
                        "feature_dim; set an even value")
    rope_width = feature_dim if feature_dim is not None else head_dim
    if mixer.get("rope", mixer.name == "softmax") and rope_width % 2:
        raise UserError(f"the RoPE width {rope_width} (mixer.feature_dim, or d_model / n_heads) is odd, but "
                        "RoPE rotates pairs of channels; make it even or set mixer.rope=false")
    dt_min, dt_max = mixer.get("dt_min"), mixer.get("dt_max")
    if dt_min is not None and dt_max is not None:
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (dt_min, dt_max)) \
                or not 0 < dt_min <= dt_max:
            raise UserError(f"invalid step range mixer.dt_min={dt_min!r}, mixer.dt_max={dt_max!r}; "
                            "set 0 < dt_min <= dt_max (e.g. 1e-3 and 1e-1)")
