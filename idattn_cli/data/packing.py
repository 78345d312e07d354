"""Packing documents into one token stream, and the stream into blocks of context_length + 1 tokens.

Documents are joined by the tokenizer's end-of-document token when it has one (`eos_id`), else by a
blank line, which the byte tokenizer encodes as ordinary bytes. Each block gives inputs block[:-1] and
targets block[1:]. Consecutive blocks share one token (the last target of one is the first input of the
next), so every target token of the stream is scored once per pass.

Bytes (for bits per byte) count the UTF-8 text of the documents plus any blank-line separators. An eos
separator counts as 0 bytes.
"""

from typing import Iterable, Iterator

import torch
from torch.utils.data import Dataset

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


def separator(tokenizer) -> tuple[list[int], bytes]:
    """Return the tokens and the UTF-8 bytes that go between two documents."""
    if tokenizer.eos_id is not None:
        return [tokenizer.eos_id], b""
    return tokenizer.encode(DOCUMENT_SEPARATOR), DOCUMENT_SEPARATOR.encode("utf-8")


def encode_documents(documents: Iterable[str], tokenizer) -> tuple[list[int], bytes]:
    """Return the token stream of all `documents` and the UTF-8 bytes it encodes (separators included).

    Without an eos token the documents are joined into one text and encoded at once. The streaming
    datamodule uses `document_tokens` instead, which encodes each document and separator on its own.
    The two agree for the byte tokenizer but can differ at document boundaries for a BPE tokenizer
    without eos.
    """
    if tokenizer.eos_id is None:
        text = DOCUMENT_SEPARATOR.join(documents)
        return tokenizer.encode(text), text.encode("utf-8")
    return encode_documents_limited(documents, tokenizer, max_tokens=None)


def encode_documents_limited(documents: Iterable[str], tokenizer, max_tokens: int | None) -> tuple[list[int], bytes]:
    """Like `encode_documents`, but stop after `max_tokens` tokens (None: no limit).

    The document that crosses the limit is cut. The bytes of its kept part are measured by decoding
    those tokens, which can differ by a few bytes where the cut splits a character.
    """
    separator_tokens, separator_bytes = separator(tokenizer)
    tokens: list[int] = []
    data: list[bytes] = []
    for index, document in enumerate(documents):
        parts = [(separator_tokens, separator_bytes)] if index else []
        parts.append((tokenizer.encode(document), document.encode("utf-8")))
        for part_tokens, part_bytes in parts:
            room = None if max_tokens is None else max_tokens - len(tokens)
            if room is not None and len(part_tokens) > room:
                kept_tokens = part_tokens[:room]
                tokens.extend(kept_tokens)
                if kept_tokens and part_bytes:
                    data.append(tokenizer.decode(kept_tokens).encode("utf-8"))
                return tokens, b"".join(data)
            tokens.extend(part_tokens)
            data.append(part_bytes)
    return tokens, b"".join(data)


def document_tokens(documents: Iterable[str], tokenizer) -> Iterator[list[int]]:
    """Yield the token lists of `documents` with the separator's tokens between them."""
    separator_tokens, _ = separator(tokenizer)
    for index, document in enumerate(documents):
        if index:
            yield separator_tokens
        yield tokenizer.encode(document)


def pack_blocks(token_lists: Iterable[list[int]], block_size: int) -> Iterator[torch.Tensor]:
    """Cut the concatenated token lists into blocks of `block_size` that overlap by one token (tail dropped).

    Yields int64 tensors of shape (block_size,), equal to BlockDataset over the whole stream.
    """
    buffer: list[int] = []
    start = 0
    for token_list in token_lists:
        buffer.extend(token_list)
        while len(buffer) - start >= block_size:
            yield torch.tensor(buffer[start : start + block_size], dtype=torch.long)
            start += block_size - 1
        del buffer[:start]
        start = 0


def unigram_entropy_bits(data: bytes) -> float:
    """Order-0 entropy of a byte string in bits per byte: the loss of the best context-free model."""
    counts = torch.bincount(torch.frombuffer(bytearray(data), dtype=torch.uint8).long(), minlength=256)
    p = counts[counts > 0].double() / len(data)
    return float(-(p * p.log2()).sum())
