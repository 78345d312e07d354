"""Packing datamodule: documents -> one token stream -> blocks of context_length + 1 tokens.

Each block gives inputs block[:-1] and targets block[1:]. Consecutive blocks share one token (the last
target of one is the first input of the next), so every target token is scored once per epoch. Documents are joined with a blank line, which the byte tokenizer encodes
as ordinary bytes (it has no end-of-document token).
"""

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from . import embedded

SOURCES = {"embedded": embedded.load_split}
DOCUMENT_SEPARATOR = "\n\n"


class BlockDataset(Dataset):
    """Non-overlapping blocks of `block_size` tokens from a 1-D token tensor, tail dropped."""

    def __init__(self, tokens: torch.Tensor, block_size: int):
        self.tokens, self.block_size = tokens, block_size
        self.stride = block_size - 1   # the last target of one block is the first input of the next

    def __len__(self):
        return max(0, (len(self.tokens) - 1) // self.stride)

    def __getitem__(self, index):
        start = index * self.stride
        return self.tokens[start : start + self.block_size]


class PackedTextDataModule(L.LightningDataModule):
    def __init__(self, source: str, tokenizer, context_length: int, batch_size: int, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.source, self.tokenizer = source, tokenizer
        self.context_length, self.batch_size = context_length, batch_size
        self.num_workers, self.seed = num_workers, seed
        self.splits: dict[str, torch.Tensor] = {}
        self.split_bytes: dict[str, int] = {}
        self.split_unigram_bits: dict[str, float] = {}

    def prepare_split(self, split: str) -> torch.Tensor:
        if split not in self.splits:
            text = DOCUMENT_SEPARATOR.join(SOURCES[self.source](split))
            self.splits[split] = torch.tensor(self.tokenizer.encode(text), dtype=torch.long)
            data = text.encode("utf-8")
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
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, drop_last=True,
                          generator=generator, num_workers=self.num_workers)

    def val_dataloader(self):
        dataset = BlockDataset(self.prepare_split("validation"), self.context_length + 1)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)

    def val_token_count(self) -> int:
        """Target tokens scored by one full validation pass."""
        n_blocks = len(BlockDataset(self.prepare_split("validation"), self.context_length + 1))
        return n_blocks * self.context_length


def build_datamodule(data_cfg, tokenizer, context_length: int, seed: int = 0) -> L.LightningDataModule:
    """Build the datamodule for the `data` config group."""
    return PackedTextDataModule(data_cfg.name, tokenizer, context_length, data_cfg.batch_size,
                                data_cfg.num_workers, seed=seed)


def unigram_entropy_bits(data: bytes) -> float:
    """Order-0 entropy of a byte string in bits per byte: the loss of the best context-free model."""
    counts = torch.bincount(torch.frombuffer(bytearray(data), dtype=torch.uint8).long(), minlength=256)
    p = counts[counts > 0].double() / len(data)
    return float(-(p * p.log2()).sum())


__all__ = ["BlockDataset", "PackedTextDataModule", "build_datamodule", "unigram_entropy_bits"]
