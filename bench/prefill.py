"""`idattn bench prefill`: peak memory of reading a long prompt, whole and in pieces.

Each point runs in a fresh process: the model (random weights, batch 1) reads a prompt of `length`
random tokens with `DecoderLM.prefill`, either in one forward ("whole") or in pieces of
`prefill_chunk_size` tokens with the state handed over ("chunked"). Interdomain attention runs its
chunk backend in both. The peak is the most memory held during the prefill beyond what was held
before it (weights and prompt). On CPU that is the resident-set high-water mark, reset just before
the prefill (Linux /proc/self/clear_refs); on CUDA it is torch's peak allocated bytes. Logits are formed for
the last token only, as a generation loop needs, so a 50K-entry vocabulary does not hide the mixer.
"""

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import torch

MIXERS = ("interdomain", "s4d", "softmax")
log = logging.getLogger("idattn")
COLUMNS = [("model", "model", "{}"), ("mixer", "mixer", "{}"), ("mode", "prefill", "{}"),
           ("length", "tokens", "{:,}"), ("peak_mib", "peak MiB", "{:,.1f}"), ("state_mib", "state MiB", "{:,.2f}"),
           ("seconds", "seconds", "{:.2f}"), ("ratio_to_softmax", "peak / softmax whole", "{:.2f}x")]


def _rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_bytes_during(fn, device: torch.device) -> int:
    """Run fn(); return the most bytes held during it beyond those held before it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    Path("/proc/self/clear_refs").write_text("5")   # resets the high-water mark VmHWM to the current RSS
    before = _rss_bytes("VmRSS")
    fn()
    return _rss_bytes("VmHWM") - before


def measure(model_name: str, mixer: str, length: int, prefill_chunk_size: int, device: str = "cpu",
            dtype: str = "float32") -> dict:
    """Measure one point in this process: build the model, prefill `length` tokens, return peak and time."""
    from omegaconf import OmegaConf

    from idattn_cli.config import compose_config
    from idattn_cli.models import build_model

    from .decode import state_bytes

    cfg = compose_config([f"model={model_name}", f"mixer={mixer}"])
    vocab = cfg.model.get("vocab_size") or cfg.tokenizer.vocab_size
    device = torch.device(device)
    model = build_model(OmegaConf.to_container(cfg.model), OmegaConf.to_container(cfg.mixer), vocab)
    model = model.to(device, getattr(torch, dtype)).eval()
    tokens = torch.randint(0, vocab, (1, length), device=device, generator=torch.Generator().manual_seed(0))
    chunk = prefill_chunk_size if prefill_chunk_size < length else None
    result = {}

    def prefill():
        start = time.perf_counter()
        _, states = model.prefill(tokens, prefill_chunk_size=chunk)
        if device.type == "cuda":
            torch.cuda.synchronize()
        result.update(seconds=time.perf_counter() - start, state_mib=state_bytes(states) / 2**20)

    peak = peak_bytes_during(prefill, device)
    return {"model": model_name, "mixer": mixer, "mode": "chunked" if chunk else "whole", "length": length,
            "prefill_chunk_size": chunk or length, "peak_mib": peak / 2**20, **result}


def run(lengths: list[int], models: list[str], prefill_chunk_size: int = 2048, device: str = "cpu",
        dtype: str = "float32") -> list[dict]:
    """Measure every model, mixer, length and mode, each in a fresh process; add the ratio to softmax."""
    root = Path(__file__).resolve().parent.parent
    rows = []
    for model in models:
        for mixer in MIXERS:
            for length in lengths:
                for chunk in (length, prefill_chunk_size):
                    args = [model, mixer, str(length), str(chunk), device, dtype]
                    done = subprocess.run([sys.executable, "-m", "bench.prefill", *args], cwd=root,
                                          capture_output=True, text=True)
                    if done.returncode != 0:
                        reason = (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]
                        rows.append({"model": model, "mixer": mixer, "length": length, "error": reason[:160]})
                        continue
                    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                    log.info("prefill %s %s %s, %d tokens: peak %.1f MiB", model, mixer, rows[-1]["mode"], length,
                             rows[-1]["peak_mib"])
    for row in rows:
        softmax = next((r for r in rows if r["model"] == row["model"] and r["mixer"] == "softmax"
                        and r["length"] == row["length"] and r.get("mode") == "whole" and "peak_mib" in r), None)
        if softmax and "peak_mib" in row:
            row["ratio_to_softmax"] = row["peak_mib"] / softmax["peak_mib"]
    return rows


if __name__ == "__main__":   # measure one point: python -m bench.prefill MODEL MIXER LENGTH CHUNK [DEVICE [DTYPE]]
    model_name, mixer, length, chunk, *rest = sys.argv[1:]
    print(json.dumps(measure(model_name, mixer, int(length), int(chunk), *rest)))
