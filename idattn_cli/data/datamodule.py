"""Datamodules: documents -> one token stream -> blocks of context_length + 1 tokens.

`build_datamodule` picks one per `data` config. Sources with `streaming: true` (hub datasets, and large
local corpora) get the streaming datamodule in streaming.py. The others (`embedded`, and `local` by
default) are tokenized into memory here and served as map-style blocks in the order samplers.py
fixes from the seed. Both pack documents as packing.py describes: joined by the tokenizer's eos token, or by a blank
line when it has none, with a one-token overlap between consecutive blocks.
"""

from functools import partial
from pathlib import Path
from typing import Callable, Iterable

import lightning as L
import torch
from torch.utils.data import DataLoader

from ..errors import UserError
from . import embedded
from .packing import DOCUMENT_SEPARATOR, BlockDataset, encode_documents, unigram_entropy_bits
from .samplers import GlobalBatchSampler, ShardSampler, per_rank_batch_size, trainer_rank
from .sources import load_documents
from .streaming import StreamingTextDataModule

SOURCES = {"embedded": embedded.load_split}


class PackedTextDataModule(L.LightningDataModule):
    """Both splits tokenized into memory. `source` is "embedded" or a function split -> documents."""

    def __init__(self, source: str | Callable[[str], Iterable[str]], tokenizer, context_length: int,
                 batch_size: int, num_workers: int = 0, seed: int = 0, name: str | None = None):
        super().__init__()
        self.load = SOURCES[source] if isinstance(source, str) else source
        self.name = name or (source if isinstance(source, str) else "local")
        self.tokenizer = tokenizer
        self.context_length, self.batch_size = context_length, batch_size
        self.num_workers, self.seed = num_workers, seed
        self.start_batch = 0   # global batches already trained on, set by a resumed run
        self.splits: dict[str, torch.Tensor] = {}
        self.split_bytes: dict[str, int] = {}
        self.split_unigram_bits: dict[str, float] = {}

    def prepare_split(self, split: str) -> torch.Tensor:
        if split not in self.splits:
            tokens, data = encode_documents(self.load(split), self.tokenizer)
            if len(tokens) < self.context_length + 1:
                raise UserError(f"the {split} split of data={self.name} has {len(tokens)} tokens, fewer than "
                                f"model.context_length + 1 = {self.context_length + 1}; add documents or lower "
                                "model.context_length")
            self.splits[split] = torch.tensor(tokens, dtype=torch.long)
            self.split_bytes[split] = len(data)
            self.split_unigram_bits[split] = unigram_entropy_bits(data)
        return self.splits[split]

    def setup(self, stage=None):
        for split in ("train", "validation"):
            self.prepare_split(split)

    def bytes_per_token(self, split: str = "validation") -> float:
        """UTF-8 bytes per token of a split: converts nats per token to bits per byte."""
        return self.split_bytes[split] / len(self.splits[split])

    def train_dataloader(self):
        dataset = BlockDataset(self.prepare_split("train"), self.context_length + 1)
        rank, world_size = trainer_rank(self)
        sampler = GlobalBatchSampler(len(dataset), self.batch_size, self.seed, rank, world_size, self.start_batch)
        return DataLoader(dataset, batch_sampler=sampler, num_workers=self.num_workers)

    def val_dataloader(self):
        dataset = BlockDataset(self.prepare_split("validation"), self.context_length + 1)
        rank, world_size = trainer_rank(self)
        # rank r's batch i holds blocks r, r + world_size, ... of single-process batch i, so a limited
        # validation (trainer.limit_val_batches) scores the same blocks on any number of processes
        return DataLoader(dataset, batch_size=per_rank_batch_size(self.batch_size, world_size),
                          sampler=ShardSampler(len(dataset), rank, world_size), num_workers=self.num_workers)

    def val_token_count(self) -> int:
        """Target tokens scored by one full validation pass."""
        n_blocks = len(BlockDataset(self.prepare_split("validation"), self.context_length + 1))
        return n_blocks * self.context_length


def build_datamodule(data_cfg, tokenizer, context_length: int, seed: int = 0,
                     data_dir: str | Path | None = None) -> L.LightningDataModule:
    """Build the datamodule for the `data` config group.

    `data_dir` is `paths.data_dir`, where `idattn prefetch` stores hub datasets; None ignores those copies.
    """
    if data_cfg.get("streaming"):
        return StreamingTextDataModule(data_cfg, tokenizer, context_length, data_cfg["batch_size"],
                                       data_cfg["num_workers"], seed=seed, data_dir=data_dir)
    if data_cfg["name"] in SOURCES:
        source = data_cfg["name"]
    else:
        source = partial(load_documents, data_cfg, data_dir=data_dir)
    return PackedTextDataModule(source, tokenizer, context_length, data_cfg["batch_size"], data_cfg["num_workers"],
                                seed=seed, name=data_cfg["name"])


__all__ = ["BlockDataset", "DOCUMENT_SEPARATOR", "PackedTextDataModule", "StreamingTextDataModule",
           "build_datamodule", "unigram_entropy_bits"]
