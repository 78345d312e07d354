"""`idattn bench op`: forward and forward+backward time of the op's backends against causal SDPA.

Shapes: batch 1, 8 heads (`heads`; 32 at 1.3B), R = P = M = 64 (SDPA with head dim 64), fp32 by default. Achieved GFLOP/s come from
each op's own FLOP count: `InterdomainAttention.flops_per_token` (the chunk backend's forward) and
4 L^2 d / 2 per head for causal attention. A backward pass counts as twice its forward. The machine's
matmul rate in the same dtype is measured in the same run, so the fraction of it is comparable
across machines.
"""

import logging

import torch
import torch.nn.functional as F

from idattn_cli.layers.interdomain import InterdomainAttention
from idattn_cli.ops import interdomain_attention

from .timing import matmul_gflops, median_seconds

HEADS, DIM = 8, 64
log = logging.getLogger("idattn")
COLUMNS = [("backend", "backend", "{}"), ("length", "length", "{:,}"), ("forward_ms", "fwd ms", "{:.1f}"),
           ("forward_backward_ms", "fwd+bwd ms", "{:.1f}"), ("ratio_to_sdpa", "fwd+bwd / SDPA", "{:.2f}x"),
           ("forward_backward_gflops", "GFLOP/s", "{:.1f}"), ("fraction_of_matmul", "of matmul", "{:.0%}")]


def inputs(length: int, heads: int = HEADS, device="cpu", dtype=torch.float32, seed: int = 0):
    """Return (q, k, v, log_lam, b, c) with gradients on q, k, v; S4D-like decays in [1e-3, 1e-1]."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, length, DIM, generator=gen).to(device, dtype).requires_grad_() for _ in range(3))
    dt = torch.exp(torch.empty(heads, 1).uniform_(-6.9, -2.3, generator=gen))
    A = torch.complex(-0.5 * torch.ones(heads, DIM), torch.pi * torch.arange(DIM).float().expand(heads, DIM))
    log_lam = (dt * A).to(torch.complex64)
    b = ((torch.exp(log_lam) - 1) / A).to(torch.complex64)
    c = torch.randn(heads, DIM, DIM, dtype=torch.complex64, generator=gen) / DIM**0.5
    return q, k, v, log_lam.to(device), b.to(device), c.to(device)


def op_flops(length: int, heads: int = HEADS) -> float:
    """Forward FLOPs of the interdomain op over `length` tokens, from the layer's own formula."""
    layer = InterdomainAttention(d_model=heads * DIM, n_heads=heads, state_dim=DIM, feature_dim=DIM)
    return layer.flops_per_token(length)["forward"] * length


def sdpa_flops(length: int, heads: int = HEADS) -> float:
    """Forward FLOPs of causal attention: QK^T and AV over the lower triangle, 2 FLOPs per multiply-add."""
    return heads * 2 * 2 * length * length * DIM / 2


def measure(name: str, length: int, reps: int, chunk_size: int, heads: int = HEADS, device="cpu",
            dtype=torch.float32) -> dict:
    q, k, v, log_lam, b, c = inputs(length, heads, device, dtype)
    if name == "sdpa":
        def forward():
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        flops = sdpa_flops(length, heads)
    else:
        def forward():
            return interdomain_attention(q, k, v, log_lam, b, c, backend=name, chunk_size=chunk_size)
        flops = op_flops(length, heads)

    def forward_backward():
        forward().sum().backward()

    with torch.no_grad():
        fwd = median_seconds(forward, reps)
    fwd_bwd = median_seconds(forward_backward, reps)
    return {"backend": name, "length": length, "forward_ms": fwd * 1e3, "forward_backward_ms": fwd_bwd * 1e3,
            "forward_backward_gflops": 3 * flops / fwd_bwd / 1e9}


# scan steps token by token in Python and fft forms length x M x (R+P) tensors. At 16K they would
# take minutes and gigabytes (an estimate from their times at 4K), so by default they stop at 4K.
SLOW_BACKENDS, SLOW_MAX_LENGTH = ("scan", "fft"), 4096


def run(lengths: list[int], backends: list[str], reps: int = 3, chunk_size: int = 64,
        slow_max_length: int = SLOW_MAX_LENGTH, heads: int = HEADS, device: str = "cpu",
        dtype: str = "float32") -> list[dict]:
    """Measure every backend at every length; add ratios to SDPA and the fraction of the matmul rate."""
    dtype = getattr(torch, dtype)
    peak = matmul_gflops(device=device, dtype=dtype)
    rows = []
    for length in lengths:
        reference = measure("sdpa", length, reps, chunk_size, heads, device, dtype)
        rows.append(reference)
        log.info("op sdpa at %d tokens: %s", length, _summary(reference))
        for name in backends:
            if name in SLOW_BACKENDS and length > slow_max_length:
                continue
            try:
                row = measure(name, length, reps, chunk_size, heads, device, dtype)
            except (RuntimeError, MemoryError) as error:   # e.g. fft's large tensors at 16K
                row = {"backend": name, "length": length, "error": str(error).splitlines()[0][:120]}
            rows.append(row)
            log.info("op %s at %d tokens: %s", name, length, _summary(row))
    for row in rows:
        same_length = next(r for r in rows if r["backend"] == "sdpa" and r["length"] == row["length"])
        if "forward_backward_ms" in row:
            row["ratio_to_sdpa"] = row["forward_backward_ms"] / same_length["forward_backward_ms"]
            row["fraction_of_matmul"] = row["forward_backward_gflops"] / peak
        row.update(matmul_gflops=peak, chunk_size=chunk_size, heads=heads)
    return rows


def _summary(row: dict) -> str:
    if "error" in row:
        return "failed: " + row["error"]
    return f"forward {row['forward_ms']:.1f} ms, forward+backward {row['forward_backward_ms']:.1f} ms"
