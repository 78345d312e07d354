"""Streaming datamodule: training blocks packed on the fly, validation held in memory.

`PackedStreamDataset` is a torch IterableDataset over pieces (files, Parquet row groups or hub shards).
Each dataloader worker of each distributed rank is one shard of n = world_size * num_workers. Shard
s = rank * num_workers + worker takes pieces s, s + n, s + 2n, ... of the epoch's piece order, or, when
there are fewer pieces than shards, documents s, s + n, ... of the whole stream. So shards never share a
document. A shard packs its documents exactly as `packing.pack_blocks` packs a token stream, with the
same separators and one-token overlap. It then runs the blocks through an optional shuffle buffer.
Piece order is shuffled per epoch from the seed. The stream repeats epochs without end, and training
stops at trainer.max_steps. Everything depends only on the seed, the pieces and the shard, so a run is
reproducible for a fixed seed, world size and worker count.

Resuming after `start_batch` batches: a DataLoader takes batch i from worker i mod W, so worker w has
made the batches i < start_batch with i mod W = w. Each worker skips that many batches of its shard,
and the workers' roles rotate by start_batch mod W, so the next batch comes from the shard that the
uninterrupted run would have read next.

`StreamingTextDataModule` reads the validation documents once (up to data.validation_max_tokens tokens)
and serves them as map-style blocks. It therefore provides the same validation statistics as the
in-memory datamodule: `bytes_per_token("validation")`, `split_unigram_bits["validation"]` and
`val_token_count()`.
"""

import itertools
import logging
import random
from pathlib import Path
from typing import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import UserError
from .packing import BlockDataset, document_tokens, encode_documents_limited, pack_blocks, unigram_entropy_bits
from .samplers import ShardSampler, per_rank_batch_size, trainer_rank
from .sources import iter_pieces, streaming_splits

log = logging.getLogger("idattn")


class PackedStreamDataset(IterableDataset):
    """Training blocks of `block_size` tokens packed from the documents of `pieces`.

    rank and world_size default to torch.distributed's when it is initialized, else 0 and 1.
    epochs=None repeats passes over the data without end.
    """

    def __init__(self, pieces: list, tokenizer, block_size: int, seed: int = 0, shuffle: bool = True,
                 shuffle_buffer: int = 0, epochs: int | None = None, rank: int | None = None,
                 world_size: int | None = None, batch_size: int = 1, start_batch: int = 0):
        super().__init__()
        self.pieces, self.tokenizer, self.block_size = list(pieces), tokenizer, block_size
        self.seed, self.shuffle, self.shuffle_buffer, self.epochs = seed, shuffle, shuffle_buffer, epochs
        self.rank, self.world_size = rank, world_size
        self.batch_size, self.start_batch = batch_size, start_batch

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        role = (worker + self.start_batch) % workers         # the worker whose shard this one reads
        done = len(range(role, self.start_batch, workers))   # batches of that shard before the resume
        shard, shards = self.shard_index(role, workers)
        return itertools.islice(self.iter_shard(shard, shards), done * self.batch_size, None)

    def shard_index(self, worker: int = 0, workers: int = 1) -> tuple[int, int]:
        """Return (shard, number of shards) of dataloader worker `worker` of `workers` on this rank."""
        rank, world_size = self.rank, self.world_size
        if rank is None or world_size is None:
            initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
            rank = torch.distributed.get_rank() if initialized else 0
            world_size = torch.distributed.get_world_size() if initialized else 1
        return rank * workers + worker, world_size * workers

    def iter_shard(self, shard: int, shards: int) -> Iterator[torch.Tensor]:
        """Yield the blocks of shard `shard` of `shards`: int64 tensors of shape (block_size,)."""
        tokens = document_tokens(self.shard_documents(shard, shards), self.tokenizer)
        blocks = pack_blocks(tokens, self.block_size)
        if self.shuffle_buffer > 1:
            blocks = shuffled(blocks, self.shuffle_buffer, random.Random(self.seed * 1_000_003 + shard))
        return blocks

    def shard_documents(self, shard: int, shards: int) -> Iterator[str]:
        """Yield this shard's documents, epoch after epoch."""
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            order = self.piece_order(epoch)
            if len(order) >= shards:
                documents = iter_pieces(order[shard::shards])
            else:
                documents = (d for i, d in enumerate(iter_pieces(order)) if i % shards == shard)
            produced = 0
            for document in documents:
                produced += 1
                yield document
            if produced == 0:
                log.warning("shard %d of %d has no documents; it yields no training blocks", shard, shards)
                return
            epoch += 1

    def piece_order(self, epoch: int) -> list:
        """Return the pieces in epoch `epoch`'s order: shuffled from (seed, epoch), or as given."""
        order = list(self.pieces)
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order


def shuffled(items: Iterator, size: int, rng: random.Random) -> Iterator:
    """Yield `items` through a shuffle buffer of `size` entries."""
    buffer = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        index = rng.randrange(size)
        yield buffer[index]
        buffer[index] = item
    rng.shuffle(buffer)
    yield from buffer


class StreamingTextDataModule(L.LightningDataModule):
    """Training blocks streamed by `PackedStreamDataset`, validation blocks from memory."""

    def __init__(self, data_cfg, tokenizer, context_length: int, batch_size: int, num_workers: int = 0,
                 seed: int = 0, data_dir: str | Path | None = None):
        super().__init__()
        self.data_cfg, self.tokenizer, self.data_dir = data_cfg, tokenizer, data_dir
        self.context_length, self.batch_size = context_length, batch_size
        self.num_workers, self.seed = num_workers, seed
        self.start_batch = 0   # batches already trained on, set by a resumed run
        self.splits: dict[str, torch.Tensor] = {}
        self.split_bytes: dict[str, int] = {}
        self.split_unigram_bits: dict[str, float] = {}
        self.train_pieces: list | None = None

    def setup(self, stage=None):
        if self.train_pieces is not None:
            return
        validation_documents, self.train_pieces = streaming_splits(self.data_cfg, self.data_dir)
        max_tokens = _validation_max_tokens(self.data_cfg)
        tokens, data = encode_documents_limited(validation_documents, self.tokenizer, max_tokens)
        if len(tokens) < self.context_length + 1:
            raise UserError(f"the validation split of data={self.data_cfg['name']} has {len(tokens)} tokens, fewer "
                            f"than model.context_length + 1 = {self.context_length + 1}; add validation "
                            "documents or raise data.validation_max_tokens")
        self.splits["validation"] = torch.tensor(tokens, dtype=torch.long)
        self.split_bytes["validation"] = len(data)
        self.split_unigram_bits["validation"] = unigram_entropy_bits(data)
        log.info("data=%s: %s validation tokens in memory, training streamed from %d pieces",
                 self.data_cfg["name"], f"{len(tokens):,}", len(self.train_pieces))

    def bytes_per_token(self, split: str = "validation") -> float:
        """UTF-8 bytes per token of a split: converts nats per token to bits per byte."""
        if split not in self.splits:
            raise ValueError(f"split {split!r} is streamed, so its bytes per token are unknown; use 'validation'")
        return self.split_bytes[split] / len(self.splits[split])

    def train_dataloader(self):
        self.setup()
        rank, world_size = trainer_rank(self)
        batch_size = per_rank_batch_size(self.batch_size, world_size)
        dataset = PackedStreamDataset(self.train_pieces, self.tokenizer, self.context_length + 1, seed=self.seed,
                                      shuffle=bool(self.data_cfg.get("shuffle", True)),
                                      shuffle_buffer=int(self.data_cfg.get("shuffle_buffer") or 0),
                                      rank=rank, world_size=world_size, batch_size=batch_size,
                                      start_batch=self.start_batch)
        return DataLoader(dataset, batch_size=batch_size, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self):
        self.setup()
        # the validation tokens are already in memory, so worker processes would only add start-up time
        dataset = BlockDataset(self.splits["validation"], self.context_length + 1)
        rank, world_size = trainer_rank(self)   # the same blocks per batch index as one process: see datamodule.py
        return DataLoader(dataset, batch_size=per_rank_batch_size(self.batch_size, world_size),
                          sampler=ShardSampler(len(dataset), rank, world_size))

    def val_token_count(self) -> int:
        """Target tokens scored by one full validation pass."""
        self.setup()
        return len(BlockDataset(self.splits["validation"], self.context_length + 1)) * self.context_length


def _validation_max_tokens(data_cfg) -> int | None:
    value = data_cfg.get("validation_max_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"invalid value {value!r} for data.validation_max_tokens; set it to a positive integer, "
                        "or null to keep every validation document")
    return value
