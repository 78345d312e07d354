"""`idattn bench decode`: per-token decode latency and decoding-state memory against context length.

For each model preset and mixer, the model (random weights, batch 1) decodes one token from a state
it would have after `length` tokens. Interdomain and S4D keep a fixed-size state, whose RoPE
position is set to `length`. Softmax keeps a KV cache of `length` positions, filled with random keys
and values, and appends to it. Filling states directly avoids a prefill of up to 16K tokens per point.
The step's time does not depend on the values in the state.

The contexts of one model and mixer are timed in turns (one step of each, then again), so a slow
spell of a shared machine falls on all of them alike instead of on whichever context ran then.
"""

import dataclasses
import logging
import statistics

import torch
from omegaconf import OmegaConf

from idattn_cli.config import compose_config
from idattn_cli.layers.softmax import KVCache
from idattn_cli.models import build_model

from .timing import seconds

MIXERS = ("interdomain", "s4d", "softmax")
log = logging.getLogger("idattn")
COLUMNS = [("model", "model", "{}"), ("mixer", "mixer", "{}"), ("length", "context", "{:,}"),
           ("step_ms", "ms / token", "{:.2f}"), ("state_mib", "state MiB", "{:.2f}"),
           ("ratio_to_shortest", "time / shortest", "{:.2f}x"),
           ("speedup_over_softmax", "softmax time / this", "{:.2f}x")]


def state_at(model, length: int, device, dtype):
    """Return per-layer decoding states as they stand after `length` tokens (batch 1)."""
    _, states = model.step(torch.zeros(1, dtype=torch.long, device=device))
    filled = []
    for state in states:
        if isinstance(state, KVCache):
            shape = (*state.keys.shape[:2], length, state.keys.shape[-1])
            filled.append(KVCache(torch.randn(shape, device=device, dtype=dtype),
                                  torch.randn(shape, device=device, dtype=dtype)))
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


def measure(model_name: str, mixer: str, lengths: list[int], reps: int, device: str = "cpu",
            dtype: str = "float32") -> list[dict]:
    """Time one decoding step at each context, `reps` turns over all contexts; one row per context."""
    cfg = compose_config([f"model={model_name}", f"mixer={mixer}"])
    vocab = cfg.model.get("vocab_size") or cfg.tokenizer.vocab_size
    device, dtype = torch.device(device), getattr(torch, dtype)
    model = build_model(OmegaConf.to_container(cfg.model), OmegaConf.to_container(cfg.mixer), vocab)
    model = model.to(device, dtype).eval()
    token = torch.zeros(1, dtype=torch.long, device=device)
    states = {length: state_at(model, length, device, dtype) for length in lengths}
    times = {length: [] for length in lengths}
    for turn in range(reps + 1):   # turn 0 warms up
        for length in lengths:
            elapsed = seconds(lambda: model.step(token, states[length]))
            if turn:
                times[length].append(elapsed)
    return [{"model": model_name, "mixer": mixer, "length": length, "step_ms": statistics.median(times[length]) * 1e3,
             "state_mib": state_bytes(states[length]) / 2**20} for length in lengths]


def run(lengths: list[int], models: list[str], reps: int = 20, device: str = "cpu", dtype: str = "float32") -> list[dict]:
    """Measure every model, mixer and length; add ratios to the shortest context and to softmax."""
    rows = []
    for model in models:
        for mixer in MIXERS:
            rows += measure(model, mixer, lengths, reps, device, dtype)
            log.info("decode %s %s: %s ms per token at %s tokens of context", model, mixer,
                     ", ".join(f"{row['step_ms']:.2f}" for row in rows[-len(lengths):]), ",".join(map(str, lengths)))
    for row in rows:
        same = [r for r in rows if r["model"] == row["model"]]
        shortest = min((r for r in same if r["mixer"] == row["mixer"]), key=lambda r: r["length"])
        softmax = next(r for r in same if r["mixer"] == "softmax" and r["length"] == row["length"])
        row["ratio_to_shortest"] = row["step_ms"] / shortest["step_ms"]
        row["speedup_over_softmax"] = softmax["step_ms"] / row["step_ms"]
    return rows
