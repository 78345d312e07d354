"""Shared timing helpers: medians of repeated calls, and the machine's fp32 matmul rate."""

import statistics
import time

import torch


def seconds(fn) -> float:
    """Time one call of `fn()`, waiting for queued CUDA work before and after it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_seconds(fn, reps: int = 5, warmup: int = 1) -> float:
    """Return the median wall time of `fn()` over `reps` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(seconds(fn) for _ in range(reps))


def matmul_gflops(size: int = 2048, device: str = "cpu", dtype=torch.float32, reps: int = 5) -> float:
    """Return the measured GFLOP/s of one size x size x size matmul (2 size^3 FLOPs)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    return 2 * size**3 / median_seconds(lambda: a @ b, reps) / 1e9
