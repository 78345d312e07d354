"""Batch order that depends only on (seed, batch index), so a resumed run and a multi-process run see
exactly the batches of an uninterrupted single-process run.

Global batch b is batch b mod n of pass b // n, where a pass is a permutation of all blocks drawn from
(seed, pass) and n = blocks // batch_size (the incomplete last batch of a pass is dropped). With
world_size processes, rank r takes the r-th of world_size equal slices of each global batch, so the
ranks' batches together are the single-process batch. `start` skips the batches a resumed run has
already trained on.
"""

from typing import Iterator

import torch
from torch.utils.data import Sampler

from ..errors import UserError


def per_rank_batch_size(batch_size: int, world_size: int) -> int:
    """Return the sequences per process in a global batch of `batch_size`; they must divide evenly."""
    if batch_size % world_size:
        raise UserError(f"data.batch_size={batch_size} does not split evenly over {world_size} processes; "
                        f"set data.batch_size to a multiple of {world_size} (it is the global batch)")
    return batch_size // world_size


class GlobalBatchSampler(Sampler[list[int]]):
    """Yield this rank's block indices of global batches start, start + 1, ... without end."""

    def __init__(self, n_blocks: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 start: int = 0):
        self.per_rank = per_rank_batch_size(batch_size, world_size)
        self.batches_per_pass = n_blocks // batch_size
        if self.batches_per_pass == 0:
            raise UserError(f"the training split has {n_blocks} blocks, fewer than data.batch_size={batch_size}; "
                            "lower data.batch_size or model.context_length, or add documents")
        self.n_blocks, self.batch_size, self.seed = n_blocks, batch_size, seed
        self.rank, self.start = rank, start

    def permutation(self, index: int) -> torch.Tensor:
        """Return the block order of pass `index`."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return torch.randperm(self.n_blocks, generator=generator)

    def __iter__(self) -> Iterator[list[int]]:
        batch, current_pass, order = self.start, -1, None
        while True:
            pass_index, offset = divmod(batch, self.batches_per_pass)
            if pass_index != current_pass:
                current_pass, order = pass_index, self.permutation(pass_index)
            first = offset * self.batch_size + self.rank * self.per_rank
            yield order[first:first + self.per_rank].tolist()
            batch += 1


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world_size, ... of `n` items: every item on exactly one rank, no padding,
    so sums over ranks equal the single-process sums (unlike DistributedSampler, which pads)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


def trainer_rank(datamodule) -> tuple[int, int]:
    """Return (global rank, world size) of the datamodule's trainer, or (0, 1) outside a Trainer."""
    trainer = getattr(datamodule, "trainer", None)
    return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
