"""The numeric precision a run trains in, decided before training so results rows record it."""

import torch


def resolve_precision(trainer_cfg) -> str:
    """bf16-mixed on a GPU, 32-true on CPU, unless the config names one."""
    if trainer_cfg.precision is not None:
        return str(trainer_cfg.precision)
    use_gpu = torch.cuda.is_available() and trainer_cfg.accelerator in ("auto", "gpu", "cuda")
    return "bf16-mixed" if use_gpu else "32-true"
