"""Embedded corpus, byte tokenizer and block packing."""

import torch

from idattn_cli.data import embedded
from idattn_cli.data.datamodule import BlockDataset, PackedTextDataModule, unigram_entropy_bits
from idattn_cli.data.tokenizers import ByteTokenizer


def test_embedded_corpus_has_42_works_split_by_work():
    works = embedded.list_works()
    assert len(works) == 42
    assert set(embedded.VALIDATION_WORKS) < set(works)
    train, validation = embedded.load_split("train"), embedded.load_split("validation")
    assert len(train) == 38
    assert len(validation) == 4
    assert 4_500_000 < sum(map(len, train)) + sum(map(len, validation)) < 5_500_000
    assert any("To be, or not to be" in text for text in validation)
    assert not any("To be, or not to be" in text for text in train)


def test_byte_tokenizer_round_trip():
    tokenizer = ByteTokenizer()
    text = "Hamlet — naïve, 'tis"
    tokens = tokenizer.encode(text)
    assert len(tokens) == len(text.encode("utf-8"))
    assert max(tokens) < tokenizer.vocab_size
    assert tokenizer.decode(tokens) == text


def test_blocks_score_every_target_once():
    tokens = torch.arange(100)
    dataset = BlockDataset(tokens, block_size=9)
    targets = torch.cat([dataset[i][1:] for i in range(len(dataset))])
    assert len(dataset) == 12
    assert torch.equal(targets, tokens[1 : 1 + 12 * 8])
    assert all(len(dataset[i]) == 9 for i in range(len(dataset)))


def test_unigram_entropy():
    assert unigram_entropy_bits(bytes(range(256)) * 3) == 8.0
    assert unigram_entropy_bits(b"aaaa") == 0.0
    assert abs(unigram_entropy_bits(b"ab") - 1.0) < 1e-12


def test_datamodule_batches_are_seeded():
    def first_batch(seed):
        datamodule = PackedTextDataModule("embedded", ByteTokenizer(), context_length=32, batch_size=4, seed=seed)
        datamodule.setup()
        return next(iter(datamodule.train_dataloader()))

    batch = first_batch(0)
    assert batch.shape == (4, 33)
    assert torch.equal(batch, first_batch(0))
    assert not torch.equal(batch, first_batch(1))
