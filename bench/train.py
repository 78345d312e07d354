"""`idattn bench train`: training tokens per second of each mixer at a model preset.

Per point: the model of `model=<preset> mixer=<mixer>` (random init, fp32 on CPU), one batch of
data.batch_size random sequences of model.context_length + 1 tokens, and the training module's
loss, AdamW groups and gradient clipping. Each timed step is one optimizer step (forward,
backward, clip, update); tokens/s = batch size x context / the median step time, after warm-up steps.
Lightning's own per-step work (logging, callbacks) is left out: it is milliseconds against steps of
hundreds of milliseconds here, and would blur the mixers' difference.
"""

import logging

import torch
from omegaconf import OmegaConf

from idattn_cli.config import compose_config
from idattn_cli.models import build_model
from idattn_cli.training.module import LMModule

from .timing import median_seconds

MIXERS = ("interdomain", "s4d", "softmax")
log = logging.getLogger("idattn")
COLUMNS = [("model", "model", "{}"), ("mixer", "mixer", "{}"), ("batch_size", "batch", "{}"),
           ("length", "context", "{:,}"), ("step_ms", "ms / step", "{:,.1f}"),
           ("tokens_per_sec", "tokens/s", "{:,.0f}"), ("ratio_to_softmax", "tokens/s / softmax", "{:.2f}x")]


def measure(model_name: str, mixer: str, reps: int, device: str = "cpu", dtype: str = "float32") -> dict:
    cfg = compose_config([f"model={model_name}", f"mixer={mixer}", "data=embedded", "tokenizer=byte"])
    vocab = cfg.model.get("vocab_size") or cfg.tokenizer.vocab_size
    torch.manual_seed(0)
    model = build_model(OmegaConf.to_container(cfg.model), OmegaConf.to_container(cfg.mixer), vocab)
    module = LMModule(model.to(device, getattr(torch, dtype)), OmegaConf.to_container(cfg.optim), max_steps=1000)
    optimizer = module.configure_optimizers()["optimizer"]
    batch_size, length = cfg.data.batch_size, cfg.model.context_length
    batch = torch.randint(0, vocab, (batch_size, length + 1), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        module._loss(batch).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.gradient_clip_val)
        optimizer.step()

    seconds = median_seconds(step, reps, warmup=2)
    return {"model": model_name, "mixer": mixer, "batch_size": batch_size, "length": length,
            "step_ms": seconds * 1e3, "tokens_per_sec": batch_size * length / seconds}


def run(models: list[str], reps: int = 10, device: str = "cpu", dtype: str = "float32") -> list[dict]:
    """Measure every model and mixer; add each row's speed relative to softmax at the same model."""
    rows = []
    for model in models:
        for mixer in MIXERS:
            rows.append(measure(model, mixer, reps, device, dtype))
            log.info("train %s %s: %.0f tokens/s", model, mixer, rows[-1]["tokens_per_sec"])
    for row in rows:
        softmax = next(r for r in rows if r["model"] == row["model"] and r["mixer"] == "softmax")
        row["ratio_to_softmax"] = row["tokens_per_sec"] / softmax["tokens_per_sec"]
    return rows
