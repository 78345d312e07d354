"""Tokenizers: byte, gpt2 (offline BPE files) and Hugging Face tokenizers (llama2) from local folders.

The hub is never contacted: llama2 is tested against a tiny tokenizer trained and saved in tmp_path, and
the offline checks set HF_HUB_OFFLINE=1 or point HF_ENDPOINT at a closed loopback port.
"""

import time

import pytest
import yaml
from data_helpers import (closed_port, empty_hf_cache, loopback_hub,  # noqa: F401  (pytest fixtures)
                          save_tiny_tokenizer, tiny_tokenizer_dir)

from idattn_cli.config import compose_config, conf_dir, group_options
from idattn_cli.data.tokenizers import (SOURCE_MARKER, ByteTokenizer, GPT2Tokenizer, HuggingFaceTokenizer,
                                        build_tokenizer, prefetched_tokenizer_dir, save_tokenizer)
from idattn_cli.errors import UserError

TEXT = "To be, or not to be: that is the question.\n\nNaïve — café 日本語 🙂"
LLAMA2_SOURCE = "meta-llama/Llama-2-7b-hf"


@pytest.fixture(scope="module")
def gpt2():
    return GPT2Tokenizer()


def test_tokenizer_yamls_have_name_and_vocab_size():
    for option in group_options("tokenizer"):
        config = yaml.safe_load((conf_dir() / "tokenizer" / f"{option}.yaml").read_text())
        assert config["name"] == option
        assert isinstance(config["vocab_size"], int), option


def test_byte_tokenizer_has_no_eos():
    tokenizer = ByteTokenizer()
    assert tokenizer.eos_id is None
    assert tokenizer.decode(tokenizer.encode(TEXT)) == TEXT


def test_gpt2_known_ids(gpt2):
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.encode(" Hello world") == [18435, 995]
    assert gpt2.vocab_size == 50257
    assert gpt2.eos_id == 50256
    assert gpt2.decode([50256]) == "<|endoftext|>"


def test_gpt2_round_trip(gpt2):
    tokens = gpt2.encode(TEXT)
    assert max(tokens) < gpt2.vocab_size
    assert gpt2.decode(tokens) == TEXT


def test_gpt2_eos_string_in_text_is_plain_text(gpt2):
    tokens = gpt2.encode("a<|endoftext|>b")
    assert gpt2.eos_id not in tokens
    assert gpt2.decode(tokens) == "a<|endoftext|>b"


def test_build_tokenizer_from_config(gpt2):
    cfg = compose_config(["tokenizer=gpt2"])
    tokenizer = build_tokenizer(cfg.tokenizer)
    assert isinstance(tokenizer, GPT2Tokenizer)
    assert tokenizer.vocab_size == cfg.tokenizer.vocab_size
    assert isinstance(build_tokenizer(compose_config([]).tokenizer), ByteTokenizer)


def llama2_config(source, vocab_size):
    return {"name": "llama2", "vocab_size": vocab_size, "source": str(source)}


def test_llama2_config_defaults():
    cfg = compose_config(["tokenizer=llama2"])
    assert cfg.tokenizer.vocab_size == 32000
    assert cfg.tokenizer.source == LLAMA2_SOURCE


def test_hf_tokenizer_from_local_folder(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    tokenizer = build_tokenizer(llama2_config(tiny_tokenizer_dir, len(reference)))
    assert isinstance(tokenizer, HuggingFaceTokenizer)
    assert tokenizer.vocab_size == len(reference)
    assert tokenizer.eos_id == reference.convert_tokens_to_ids("</s>")
    text = "To be or not to be"
    tokens = tokenizer.encode(text)
    assert tokens == reference.encode(text, add_special_tokens=False)   # no BOS added
    assert reference.bos_token_id not in tokens
    assert tokenizer.decode(tokens) == text


def test_hf_tokenizer_vocab_mismatch_raises(tiny_tokenizer_dir):
    with pytest.raises(UserError, match=r"but tokenizer.vocab_size=32000; set tokenizer.vocab_size="):
        build_tokenizer(llama2_config(tiny_tokenizer_dir, 32000))


def test_hf_tokenizer_missing_local_path_raises(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_tokenizer(llama2_config(tmp_path / "nowhere", 32000))


def test_hf_tokenizer_folder_without_files_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="cannot load a tokenizer from tokenizer.source="):
        build_tokenizer(llama2_config(tmp_path / "empty", 32000))


def test_llama2_offline_fails_fast(monkeypatch, tmp_path, empty_hf_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose_config(["tokenizer=llama2"])
    started = time.perf_counter()
    with pytest.raises(UserError) as error:
        build_tokenizer(cfg.tokenizer, tmp_path / "data")
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert f"tokenizer {LLAMA2_SOURCE} (tokenizer=llama2): HF_HUB_OFFLINE=1 is set" in message
    assert "idattn prefetch tokenizer=llama2" in message
    assert "tokenizer.source=/path/to/tokenizer_dir" in message
    assert "tokenizer=gpt2 or tokenizer=byte" in message


def test_llama2_unreachable_hub_fails_fast(monkeypatch, tmp_path, empty_hf_cache, closed_port):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    started = time.perf_counter()
    with pytest.raises(UserError, match=f"no connection to 127.0.0.1:{closed_port}"):
        build_tokenizer(llama2_config(LLAMA2_SOURCE, 32000), tmp_path / "data")
    assert time.perf_counter() - started < 5


def test_prefetched_copy_is_used_offline(monkeypatch, tmp_path, tiny_tokenizer_dir, empty_hf_cache):
    data_dir = tmp_path / "data"
    copy = save_tiny_tokenizer(prefetched_tokenizer_dir("llama2", data_dir))
    (copy / SOURCE_MARKER).write_text(LLAMA2_SOURCE + "\n")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    size = build_tokenizer(llama2_config(tiny_tokenizer_dir, None)).vocab_size
    tokenizer = build_tokenizer(llama2_config(LLAMA2_SOURCE, size), data_dir)
    assert tokenizer.encode("To be") == build_tokenizer(llama2_config(tiny_tokenizer_dir, size)).encode("To be")


def test_prefetched_copy_of_other_source_is_ignored(monkeypatch, tmp_path, empty_hf_cache):
    data_dir = tmp_path / "data"
    copy = save_tiny_tokenizer(prefetched_tokenizer_dir("llama2", data_dir))
    (copy / SOURCE_MARKER).write_text("someone/other-tokenizer\n")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="HF_HUB_OFFLINE=1 is set"):
        build_tokenizer(llama2_config(LLAMA2_SOURCE, 32000), data_dir)


def test_save_tokenizer_writes_prefetched_copy(monkeypatch, tmp_path, tiny_tokenizer_dir, loopback_hub):
    """from_pretrained is replaced by a load of the local fixture: the real download is not exercised here."""
    import transformers

    requested = []

    def fake_from_pretrained(name, **kwargs):
        requested.append(name)
        return transformers.PreTrainedTokenizerFast.from_pretrained(str(tiny_tokenizer_dir))

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake_from_pretrained)
    target = save_tokenizer(llama2_config(LLAMA2_SOURCE, 32000), tmp_path / "data")
    assert requested == [LLAMA2_SOURCE]
    assert target == prefetched_tokenizer_dir("llama2", tmp_path / "data")
    assert (target / "tokenizer.json").is_file()
    assert (target / SOURCE_MARKER).read_text().strip() == LLAMA2_SOURCE


def test_save_tokenizer_skips_builtin(tmp_path):
    assert save_tokenizer({"name": "gpt2", "vocab_size": 50257}, tmp_path) is None
    assert save_tokenizer({"name": "byte", "vocab_size": 256}, tmp_path) is None
    assert not (tmp_path / "tokenizers").exists()
