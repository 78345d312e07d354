"""`idattn info`: size, state and cost of a configured model, without allocating its weights."""

import torch
from omegaconf import DictConfig

from ..models import build_model


def info(cfg: DictConfig) -> dict:
    """Build the model on the meta device and return its parameter count, state size and FLOPs."""
    with torch.device("meta"):
        model = build_model(cfg.model, cfg.mixer, cfg.tokenizer.vocab_size)
    context = cfg.model.context_length
    per_layer = model.state_size_per_layer(context)
    flops = model.flops_per_token(context)
    return {
        "model": cfg.model.name,
        "mixer": cfg.mixer.name,
        "n_params": sum(p.numel() for p in model.parameters()),
        "context_length": context,
        "state_size_per_layer": per_layer,
        "state_size": per_layer * cfg.model.n_layers,
        "state_size_per_token": per_layer * cfg.model.n_layers / context,
        **{f"flops_per_token_{key}": value for key, value in flops.items()},
    }
