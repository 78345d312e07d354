"""Perplexity of a trained LM on fixed-length windows, overall and per position bucket.

Each window is `length + 1` consecutive tokens of one document: inputs window[:-1], targets window[1:].
A document gives floor((n - 1) / length) windows that do not overlap, so the same text is scored
whichever mixer runs. The per-position losses show whether a model stays flat past its training
context: bucket b covers target positions [b * bucket_size, (b + 1) * bucket_size).
"""

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F


def document_windows(documents: Iterable[list[int]], length: int, max_windows: int) -> torch.Tensor:
    """Cut token documents into at most `max_windows` windows of `length + 1` tokens -> `(n, length + 1)`."""
    windows = []
    for tokens in documents:
        for start in range(0, len(tokens) - length, length):
            windows.append(tokens[start : start + length + 1])
            if len(windows) == max_windows:
                return torch.tensor(windows, dtype=torch.long)
    if not windows:
        raise ValueError(f"no document has more than {length} tokens")
    return torch.tensor(windows, dtype=torch.long)


@torch.no_grad()
def token_losses(model, windows: torch.Tensor, batch_size: int, device="cpu") -> torch.Tensor:
    """Cross-entropy in nats of every target token: windows `(n, length + 1)` -> losses `(n, length)`."""
    model.eval()
    losses = []
    for batch in windows.split(batch_size):
        batch = batch.to(device)
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().transpose(1, 2), batch[:, 1:], reduction="none")
        losses.append(loss.cpu().double())
    return torch.cat(losses)


def bucket_losses(losses: torch.Tensor, bucket_size: int) -> list[dict]:
    """Mean loss per position bucket: losses `(n, length)` -> [{start, end, loss, ppl}], end exclusive."""
    length = losses.shape[1]
    buckets = []
    for start in range(0, length, bucket_size):
        end = min(start + bucket_size, length)
        loss = float(losses[:, start:end].mean())
        buckets.append({"start": start, "end": end, "loss": loss, "ppl": math.exp(loss)})
    return buckets
