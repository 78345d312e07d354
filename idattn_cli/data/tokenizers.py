"""Tokenizers: `byte` (UTF-8 bytes, vocabulary 256, nothing to download)."""


class ByteTokenizer:
    """Token = one UTF-8 byte, so bits per token equal bits per byte."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, tokens) -> str:
        return bytes(tokens).decode("utf-8", errors="replace")


TOKENIZERS = {"byte": ByteTokenizer}


def build_tokenizer(cfg):
    """Build the tokenizer named by the `tokenizer` config group."""
    return TOKENIZERS[cfg["name"]]()
