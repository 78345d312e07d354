"""Shared fixtures of the data tests: a loopback stand-in for the hub host, and a tiny saved HF tokenizer."""

import socket
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
FINEWEB_SAMPLE = FIXTURES / "fineweb_edu_sample.parquet"   # 40 documents, 4 row groups of 10


@pytest.fixture
def loopback_hub(monkeypatch):
    """Point HF_ENDPOINT at a listening socket on 127.0.0.1, so the hub's TCP check passes offline-free."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    yield port
    server.close()


@pytest.fixture
def closed_port():
    """Return a loopback port with nothing listening on it."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        return server.getsockname()[1]


def save_tiny_tokenizer(folder: Path) -> Path:
    """Train a small BPE tokenizer with <unk>, <s>, </s> on embedded text and save it with save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from idattn_cli.data import embedded

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    text = embedded.load_split("validation")[0][:20_000]
    tokenizer.train_from_iterator(text.splitlines(), trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    wrapped.save_pretrained(str(folder))
    return folder


@pytest.fixture
def tiny_tokenizer_dir(tmp_path):
    return save_tiny_tokenizer(tmp_path / "tiny_tokenizer")


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """Point the Hugging Face cache at an empty folder, so that a tokenizer cached on this machine is not found."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
