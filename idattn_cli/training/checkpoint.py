"""Load a model saved by `idattn train` for evaluation or decoding, without Lightning."""

import torch

from ..models import build_model


def load_model(path, map_location="cpu"):
    """Rebuild the LM from a `last.ckpt` of `idattn train`; return (model in eval mode, run config dict)."""
    # the checkpoint stores the run config (plain containers) beside the weights, so full unpickling
    # is needed; load only checkpoints you trust
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    config = checkpoint["hyper_parameters"]["config"]
    vocab_size = config["tokenizer"]["vocab_size"]   # no tokenizer load: it may need the hub
    model = build_model(config["model"], config["mixer"], vocab_size)
    weights = {key.removeprefix("model."): value for key, value in checkpoint["state_dict"].items()}
    model.load_state_dict(weights)
    return model.eval(), config
