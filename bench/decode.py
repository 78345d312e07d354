"""`idattn bench decode`: per-token decode latency and decoding-state memory against context length.

For each model preset and mixer, the model (random weights, fp32, batch 1) decodes one token from a
state it would have after `length` tokens. Interdomain and S4D keep a fixed-size state, whose RoPE
position is set to `length`. Softmax keeps a KV cache of `length` positions, filled with random keys
and values, and appends to it. Filling states directly avoids a prefill of up to 16K tokens per point.
The step's time does not depend on the values in the state.
"""

import dataclasses

import torch
from omegaconf import OmegaConf

from idattn_cli.config import compose_config
from idattn_cli.layers.softmax import KVCache
from idattn_cli.models import build_model

from .timing import median_seconds

MIXERS = ("interdomain", "s4d", "softmax")
COLUMNS = [("model", "model", "{}"), ("mixer", "mixer", "{}"), ("length", "context", "{:,}"),
           ("step_ms", "ms / token", "{:.2f}"), ("state_mib", "state MiB", "{:.2f}"),
           ("ratio_to_shortest", "vs shortest", "{:.2f}x"), ("speedup_over_softmax", "vs softmax", "{:.2f}x")]


def state_at(model, length: int):
    """Return per-layer decoding states as they stand after `length` tokens (batch 1)."""
    _, states = model.step(torch.zeros(1, dtype=torch.long))
    filled = []
    for state in states:
        if isinstance(state, KVCache):
            shape = (*state.keys.shape[:2], length, state.keys.shape[-1])
            filled.append(KVCache(torch.randn(shape), torch.randn(shape)))
        else:
            filled.append(dataclasses.replace(state, position=length))
    return filled


def state_bytes(states) -> int:
    """Bytes of every tensor in the decoding states."""
    total = 0
    for state in states:
        fields = vars(state).values() if dataclasses.is_dataclass(state) else [state]
        total += sum(t.numel() * t.element_size() for t in fields if isinstance(t, torch.Tensor))
    return total


def measure(model_name: str, mixer: str, length: int, reps: int) -> dict:
    cfg = compose_config([f"model={model_name}", f"mixer={mixer}"])
    vocab = cfg.model.get("vocab_size") or cfg.tokenizer.vocab_size
    model = build_model(OmegaConf.to_container(cfg.model), OmegaConf.to_container(cfg.mixer), vocab).eval()
    states = state_at(model, length)
    token = torch.zeros(1, dtype=torch.long)
    seconds = median_seconds(lambda: model.step(token, states), reps)
    return {"model": model_name, "mixer": mixer, "length": length, "step_ms": seconds * 1e3,
            "state_mib": state_bytes(states) / 2**20}


def run(lengths: list[int], models: list[str], reps: int = 20) -> list[dict]:
    """Measure every model, mixer and length; add ratios to the shortest context and to softmax."""
    rows = [measure(model, mixer, length, reps) for model in models for mixer in MIXERS for length in lengths]
    for row in rows:
        same = [r for r in rows if r["model"] == row["model"]]
        shortest = min((r for r in same if r["mixer"] == row["mixer"]), key=lambda r: r["length"])
        softmax = next(r for r in same if r["mixer"] == "softmax" and r["length"] == row["length"])
        row["ratio_to_shortest"] = row["step_ms"] / shortest["step_ms"]
        row["speedup_over_softmax"] = softmax["step_ms"] / row["step_ms"]
    return rows
