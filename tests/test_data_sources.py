"""Data sources, the hub check, streaming packing and prefetch, against the fixtures in tests/fixtures.

No test contacts the Hugging Face Hub. Hub streaming is tested with `datasets.load_dataset` redirected to
the local Parquet fixture, prefetch with `load_dataset_builder` and `snapshot_download` replaced by
fakes that copy fixture files, and the hub's TCP check against sockets on 127.0.0.1.
"""

import gzip
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from data_helpers import (FINEWEB_SAMPLE, FIXTURES, closed_port, empty_hf_cache,  # noqa: F401  (pytest fixtures)
                          loopback_hub, tiny_tokenizer_dir)
from omegaconf import OmegaConf

from idattn_cli.config import compose_config, conf_dir, group_options
from idattn_cli.data.datamodule import StreamingTextDataModule, build_datamodule
from idattn_cli.data.hub import require_hub
from idattn_cli.data.hub_datasets import MANIFEST, hub_pieces, parse_hub_file
from idattn_cli.data.packing import BlockDataset, encode_documents, pack_blocks
from idattn_cli.data.preflight import check_data_access
from idattn_cli.data.sources import load_documents, select
from idattn_cli.data.streaming import PackedStreamDataset
from idattn_cli.data.tokenizers import ByteTokenizer, build_tokenizer
from idattn_cli.errors import UserError
from idattn_cli.recipes.prefetch import prefetch

IDATTN = str(Path(sys.executable).parent / "idattn")
FINEWEB_TEXTS = pq.read_table(FINEWEB_SAMPLE).column("text").to_pylist()
JSONL_TEXTS = [json.loads(line)["text"] for line in (FIXTURES / "documents.jsonl").read_text().splitlines()]
TXT_TEXTS = [path.read_text() for path in sorted((FIXTURES / "txt").glob("*.txt"))]
HUB_DATA_CONFIGS = ("fineweb_edu", "pg19", "govreport", "qmsum", "qasper", "codeparrot")


def data_config(*overrides):
    return compose_config(list(overrides)).data


def documents(data_cfg, split, data_dir=None):
    return list(load_documents(data_cfg, split, data_dir))


# --- configs -----------------------------------------------------------------------------------------

def test_data_yamls_have_required_keys():
    import yaml

    for option in group_options("data"):
        config = yaml.safe_load((conf_dir() / "data" / f"{option}.yaml").read_text())
        for key in ("name", "batch_size", "num_workers"):
            assert key in config, f"{option}.yaml lacks {key}"
        assert config["name"] == option


def test_hub_configs_name_split_and_column():
    for option in HUB_DATA_CONFIGS:
        cfg = data_config(f"data={option}")
        assert cfg.hub_name, option
        assert cfg.text_column, option
        assert cfg.streaming, option
        assert cfg.validation_split or cfg.validation_documents, option


# --- the hub check -----------------------------------------------------------------------------------

@pytest.mark.parametrize("variable,value", [("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "yes"),
                                            ("HF_HUB_OFFLINE", "TRUE")])
def test_require_hub_offline_variable(monkeypatch, variable, value):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(UserError) as error:
        require_hub("dataset a/b", "do c")
    assert str(error.value) == f"cannot reach the Hugging Face Hub for dataset a/b: {variable}={value} is set; do c"


def test_require_hub_false_offline_value_checks_connection(monkeypatch, loopback_hub):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    require_hub("dataset a/b", "do c")


def test_require_hub_closed_port(monkeypatch, closed_port):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    started = time.perf_counter()
    with pytest.raises(UserError, match=f"no connection to 127.0.0.1:{closed_port} within 3 s"):
        require_hub("dataset a/b", "do c")
    assert time.perf_counter() - started < 4


def test_require_hub_reachable(loopback_hub):
    require_hub("dataset a/b", "do c")


# --- local files -------------------------------------------------------------------------------------

def test_local_jsonl():
    cfg = data_config("data=local", f"data.path={FIXTURES / 'documents.jsonl'}")
    assert documents(cfg, "validation") == JSONL_TEXTS[:1]   # 5% of 8 documents, at least 1
    assert documents(cfg, "train") == JSONL_TEXTS[1:]


def test_local_txt_folder():
    cfg = data_config("data=local", f"data.path={FIXTURES / 'txt'}", "data.validation_documents=1")
    assert documents(cfg, "validation") == TXT_TEXTS[:1]
    assert documents(cfg, "train") == TXT_TEXTS[1:]


def test_local_parquet_glob_and_fraction():
    cfg = data_config("data=local", f"data.path='{FIXTURES}/*.parquet'", "data.validation_fraction=0.25")
    assert documents(cfg, "validation") == FINEWEB_TEXTS[:10]
    assert documents(cfg, "train") == FINEWEB_TEXTS[10:]


def test_local_validation_path():
    cfg = data_config("data=local", f"data.path={FIXTURES / 'documents.jsonl'}",
                      f"data.validation_path={FIXTURES / 'txt'}")
    assert documents(cfg, "train") == JSONL_TEXTS
    assert documents(cfg, "validation") == TXT_TEXTS


def test_local_gzip_jsonl_and_text_column(tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file:
        for text in ["first", "", "second", "third"]:
            file.write(json.dumps({"body": text}) + "\n")
    cfg = data_config("data=local", f"data.path={path}", "data.text_column=body", "data.validation_documents=1")
    assert documents(cfg, "validation") == ["first"]
    assert documents(cfg, "train") == ["second", "third"]   # the empty text is skipped


def write_parquet(path, **columns):
    pq.write_table(pa.table(columns), path)
    return path


def make_nothing(folder):
    pass


def make_empty_parquet(folder):
    write_parquet(folder / "empty.parquet", text=pa.array([], pa.string()))


SETUP_ERRORS = {   # case: (create files in the folder, data.path inside it, expected message)
    "missing path": (make_nothing, "nowhere.jsonl", "data.path=.*nowhere.jsonl' does not exist"),
    "no glob match": (make_nothing, "*.parquet", r"\*.parquet' matches no files"),
    "folder without files": (lambda d: (d / "sub").mkdir(), "sub", "is a folder without"),
    "unsupported type": (lambda d: (d / "notes.md").write_text("x"), "notes.md", "is not a supported file type"),
    "empty txt": (lambda d: (d / "empty.txt").write_bytes(b""), "empty.txt", "empty.txt is empty"),
    "empty jsonl": (lambda d: (d / "empty.jsonl").write_bytes(b""), "empty.jsonl", "empty.jsonl is empty"),
    "empty parquet": (make_empty_parquet, "empty.parquet", r"empty.parquet is empty \(0 rows\)"),
    "missing parquet column": (lambda d: write_parquet(d / "cols.parquet", body=["a"], id=[1]), "cols.parquet",
                               r"cols.parquet has no column 'text' \(columns: body, id\); set data.text_column"),
    "non-string column": (lambda d: write_parquet(d / "ints.parquet", text=[1, 2]), "ints.parquet",
                          "column 'text' of .*ints.parquet has type int64, not string"),
}


@pytest.mark.parametrize("case", SETUP_ERRORS)
def test_local_errors_at_setup(tmp_path, case):
    create, relative_path, expected = SETUP_ERRORS[case]
    create(tmp_path)
    cfg = data_config("data=local", f"data.path='{tmp_path / relative_path}'")
    with pytest.raises(UserError, match=expected):
        load_documents(cfg, "train")


@pytest.mark.parametrize("name,content,expected", [
    ("latin1.txt", "café".encode("latin-1"), r"latin1.txt is not valid UTF-8 text .*convert it to UTF-8"),
    ("latin1.jsonl", b'{"text": "caf\xe9"}\n', r"latin1.jsonl is not valid UTF-8 text"),
    ("bad.jsonl", b'{"text": "a"}\n{"text": \n', r"bad.jsonl line 2 is not valid JSON"),
    ("field.jsonl", b'{"body": "a", "id": 1}\n', r"field.jsonl line 1 has no field 'text' \(found: body, id\)"),
    ("number.jsonl", b'{"text": 3}\n', r"number.jsonl line 1: field 'text' has type int, not string"),
    ("blank.jsonl", b'\n\n{"text": ""}\n', r"the train split of data=local has no documents"),
])
def test_local_errors_while_reading(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    cfg = data_config("data=local", f"data.path={tmp_path / name}", "data.validation_path=" + str(FIXTURES / "txt"))
    with pytest.raises(UserError, match=expected):
        documents(cfg, "train")


def test_local_without_path_raises():
    with pytest.raises(UserError, match=r"data=local needs data.path; set it to a file, folder or glob"):
        load_documents(data_config("data=local"), "train")


def test_held_out_everything_raises():
    cfg = data_config("data=local", f"data.path={FIXTURES / 'txt'}", "data.validation_documents=3")
    with pytest.raises(UserError, match="data.validation_documents=3 holds out all 3 documents of data=local"):
        documents(cfg, "train")


def test_invalid_held_out_settings_raise():
    path = f"data.path={FIXTURES / 'txt'}"
    with pytest.raises(UserError, match="invalid value 0 for data.validation_documents"):
        load_documents(data_config("data=local", path, "data.validation_documents=0"), "train")
    with pytest.raises(UserError, match="invalid value 1.5 for data.validation_fraction"):
        load_documents(data_config("data=local", path, "data.validation_fraction=1.5"), "train")
    with pytest.raises(UserError, match="data.validation_fraction needs the document count"):
        load_documents(data_config("data=local", path, "data.streaming=true"), "train")


# --- hub sources with local files ---------------------------------------------------------------------

def test_fineweb_edu_local_files_hold_out_first_documents():
    cfg = data_config("data=fineweb_edu", f"data.path={FINEWEB_SAMPLE}", "data.validation_documents=5")
    assert documents(cfg, "validation") == FINEWEB_TEXTS[:5]
    assert documents(cfg, "train") == FINEWEB_TEXTS[5:]


def test_long_document_corpus_path_is_validation_split():
    cfg = data_config("data=pg19", f"data.path={FINEWEB_SAMPLE}")
    assert documents(cfg, "validation") == FINEWEB_TEXTS
    with pytest.raises(UserError, match="data.path is the validation split of data=pg19"):
        load_documents(cfg, "train")


def test_load_documents_accepts_plain_dict():
    cfg = OmegaConf.to_container(data_config("data=pg19", f"data.path={FINEWEB_SAMPLE}"))
    assert documents(cfg, "validation") == FINEWEB_TEXTS


def test_evaluation_corpus_without_train_split_raises():
    cfg = data_config("data=codeparrot", f"data.validation_path={FINEWEB_SAMPLE}")
    with pytest.raises(UserError, match="data=codeparrot has no training split"):
        load_documents(cfg, "train")


@pytest.mark.parametrize("option", ["fineweb_edu", "pg19"])
def test_offline_hub_source_fails_fast(monkeypatch, tmp_path, option):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = data_config(f"data={option}")
    started = time.perf_counter()
    with pytest.raises(UserError) as error:
        build_datamodule(cfg, ByteTokenizer(), 32, data_dir=tmp_path).setup()
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert f"cannot reach the Hugging Face Hub for dataset {cfg.hub_name}" in message
    assert "HF_HUB_OFFLINE=1 is set" in message
    assert f"run `idattn prefetch data={option}` on a machine with access" in message
    assert f"data.path='/data/{option}/*.parquet'" in message


def test_offline_message_names_subset(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"for dataset HuggingFaceFW/fineweb-edu \(sample-10BT\): HF_HUB_OFFLINE=1"):
        load_documents(data_config("data=fineweb_edu"), "validation")


@pytest.fixture
def hub_stream(monkeypatch, loopback_hub):
    """Redirect `datasets.load_dataset` for hub names to a streamed copy of the Parquet fixture."""
    import datasets

    original = datasets.load_dataset
    calls = []

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs.get("split")))
        return original("parquet", data_files=str(FINEWEB_SAMPLE), split="train", streaming=True)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    return calls


def test_hub_pieces_stream_documents(hub_stream):
    cfg = data_config("data=fineweb_edu")
    pieces = hub_pieces(cfg, "train")
    assert hub_stream == [("HuggingFaceFW/fineweb-edu", "sample-10BT", "train")]
    assert len(pieces) == 4   # one per Parquet row group
    assert [d for piece in pieces for d in piece.documents()] == FINEWEB_TEXTS
    assert documents(cfg, "validation")[:3] == FINEWEB_TEXTS[:3]


def test_hub_pieces_missing_column(hub_stream):
    cfg = data_config("data=fineweb_edu", "data.text_column=content")
    with pytest.raises(UserError, match=r"has no column 'content' \(columns: text, id, dump, url"):
        hub_pieces(cfg, "train")


def test_parse_hub_file():
    commit = "4863ab07d7520451e6f73e2912ad8bfee7d97c11"
    url = f"hf://datasets/HuggingFaceFW/fineweb-edu@{commit}/sample/10BT/000_00000.parquet"
    assert parse_hub_file(url) == ("HuggingFaceFW/fineweb-edu", commit, "sample/10BT/000_00000.parquet")
    assert parse_hub_file("hf://datasets/a/b@refs%2Fconvert%2Fparquet/x/y.parquet")[1] == "refs/convert/parquet"


# --- packing and streaming ----------------------------------------------------------------------------

def stream_blocks(pieces, tokenizer, block_size, shard=0, shards=1, **kwargs):
    dataset = PackedStreamDataset(pieces, tokenizer, block_size, epochs=1, shuffle=False, **kwargs)
    return list(dataset.iter_shard(shard, shards))


def expected_blocks(texts, tokenizer, block_size):
    tokens, _ = encode_documents(texts, tokenizer)
    dataset = BlockDataset(torch.tensor(tokens), block_size)
    return [dataset[i] for i in range(len(dataset))]


def fineweb_pieces():
    """Return the fixture's 4 row groups as pieces: all 40 documents, none held out."""
    cfg = data_config("data=fineweb_edu", f"data.path={FINEWEB_SAMPLE}", f"data.validation_path={FINEWEB_SAMPLE}")
    selection = select(cfg, "train", None)
    assert selection.part == "all"
    return selection.pieces


@pytest.mark.parametrize("tokenizer", [ByteTokenizer(), None], ids=["byte", "gpt2"])
def test_stream_blocks_equal_packed_stream(tokenizer):
    tokenizer = tokenizer or build_tokenizer({"name": "gpt2", "vocab_size": 50257})
    blocks = stream_blocks(fineweb_pieces(), tokenizer, 65)
    expected = expected_blocks(FINEWEB_TEXTS, tokenizer, 65)
    assert len(blocks) == len(expected) > 10
    assert all(torch.equal(a, b) for a, b in zip(blocks, expected))


def test_pack_blocks_across_list_boundaries():
    lists = [[0, 1], [2, 3, 4, 5, 6], [], [7], [8, 9, 10, 11]]
    blocks = [b.tolist() for b in pack_blocks(lists, 4)]
    assert blocks == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]


@pytest.mark.parametrize("shards", [2, 3, 6], ids=["pieces 2", "pieces 3", "documents 6"])
def test_stream_shards_are_disjoint(shards):
    tokenizer, pieces = ByteTokenizer(), fineweb_pieces()
    dataset = PackedStreamDataset(pieces, tokenizer, 65, epochs=1, shuffle=False)
    per_shard = [list(dataset.shard_documents(shard, shards)) for shard in range(shards)]
    assert all(per_shard), "every shard gets documents"
    assert Counter(d for docs in per_shard for d in docs) == Counter(FINEWEB_TEXTS)   # disjoint, complete
    for shard, docs in enumerate(per_shard):
        blocks = list(dataset.iter_shard(shard, shards))
        assert all(torch.equal(a, b) for a, b in zip(blocks, expected_blocks(docs, tokenizer, 65), strict=True))


def test_stream_shard_index_combines_ranks_and_workers():
    dataset = PackedStreamDataset([], ByteTokenizer(), 9, rank=1, world_size=2)
    assert dataset.shard_index() == (1, 2)


def test_stream_dataloader_workers_and_ranks_are_disjoint():
    tokenizer, pieces = ByteTokenizer(), fineweb_pieces()
    seen = []
    for rank in range(2):
        dataset = PackedStreamDataset(pieces, tokenizer, 65, epochs=1, shuffle=False, rank=rank, world_size=2)
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
        seen.append(Counter(tuple(block.tolist()) for block in loader))
    per_shard = [Counter(tuple(b.tolist()) for b in stream_blocks(pieces, tokenizer, 65, shard, 4))
                 for shard in range(4)]
    assert seen[0] == per_shard[0] + per_shard[1]     # rank 0 runs shards 0 and 1 (its two workers)
    assert seen[1] == per_shard[2] + per_shard[3]
    assert not set(seen[0]) & set(seen[1])


def test_stream_is_deterministic_for_a_seed():
    def first_blocks(seed):
        dataset = PackedStreamDataset(fineweb_pieces(), ByteTokenizer(), 65, seed=seed, shuffle_buffer=16)
        stream = dataset.iter_shard(0, 1)
        return torch.stack([next(stream) for _ in range(40)])

    assert torch.equal(first_blocks(0), first_blocks(0))
    assert not torch.equal(first_blocks(0), first_blocks(1))


def test_stream_repeats_epochs():
    dataset = PackedStreamDataset(fineweb_pieces(), ByteTokenizer(), 65, epochs=None, shuffle=False)
    documents_seen = dataset.shard_documents(0, 1)
    first_pass = [next(documents_seen) for _ in range(40)]
    assert first_pass == FINEWEB_TEXTS
    assert next(documents_seen) == FINEWEB_TEXTS[0]


def test_streaming_datamodule_statistics():
    cfg = data_config("data=fineweb_edu", f"data.path={FINEWEB_SAMPLE}", "data.validation_documents=5",
                      "data.num_workers=0", "data.batch_size=4")
    datamodule = build_datamodule(cfg, ByteTokenizer(), 32, seed=0)
    assert isinstance(datamodule, StreamingTextDataModule)
    datamodule.setup()
    text = "\n\n".join(FINEWEB_TEXTS[:5])
    assert datamodule.split_bytes["validation"] == len(text.encode())
    assert datamodule.bytes_per_token("validation") == 1.0
    assert datamodule.val_token_count() == (len(text.encode()) - 1) // 32 * 32
    assert 3 < datamodule.split_unigram_bits["validation"] < 6
    assert next(iter(datamodule.train_dataloader())).shape == (4, 33)


def test_streaming_validation_token_limit():
    cfg = data_config("data=fineweb_edu", f"data.path={FINEWEB_SAMPLE}", "data.validation_documents=5",
                      "data.validation_max_tokens=1000")
    datamodule = build_datamodule(cfg, ByteTokenizer(), 32)
    datamodule.setup()
    assert len(datamodule.splits["validation"]) == 1000
    assert datamodule.split_bytes["validation"] == 1000
    assert torch.equal(datamodule.splits["validation"], torch.tensor(list(FINEWEB_TEXTS[0].encode()[:1000])))


def test_in_memory_local_datamodule_with_eos():
    gpt2 = build_tokenizer({"name": "gpt2", "vocab_size": 50257})
    cfg = data_config("data=local", f"data.path={FIXTURES / 'documents.jsonl'}", "data.validation_documents=2")
    datamodule = build_datamodule(cfg, gpt2, 16)
    datamodule.setup()
    expected = gpt2.encode(JSONL_TEXTS[0]) + [gpt2.eos_id] + gpt2.encode(JSONL_TEXTS[1])
    assert datamodule.splits["validation"].tolist() == expected
    assert datamodule.split_bytes["validation"] == len((JSONL_TEXTS[0] + JSONL_TEXTS[1]).encode())


def test_too_short_split_raises(tmp_path):
    (tmp_path / "a.txt").write_text("short")
    (tmp_path / "b.txt").write_text("tiny")
    cfg = data_config("data=local", f"data.path={tmp_path}", "data.validation_documents=1")
    with pytest.raises(UserError, match=r"the train split of data=local has 4 tokens, fewer than model.context_length"):
        build_datamodule(cfg, ByteTokenizer(), 32).setup()


# --- prefetch ------------------------------------------------------------------------------------------

FAKE_REVISION = "0123456789abcdef0123456789abcdef01234567"
FAKE_FILES = ["sample/10BT/000_00000.parquet", "sample/10BT/001_00000.parquet", "sample/10BT/002_00000.parquet"]


@pytest.fixture
def fake_hub_downloads(monkeypatch, loopback_hub, tiny_tokenizer_dir):
    """Replace the hub calls of prefetch by copies of local fixtures: the real download is not exercised."""
    import datasets
    import huggingface_hub
    import transformers

    downloads = []

    def fake_builder(path, name=None, revision=None, **kwargs):
        urls = [f"hf://datasets/{path}@{FAKE_REVISION}/{file}" for file in FAKE_FILES]
        return SimpleNamespace(config=SimpleNamespace(data_files={"train": urls}))

    def fake_snapshot_download(repo_id, repo_type=None, revision=None, allow_patterns=None, local_dir=None, **kwargs):
        downloads.append((repo_id, repo_type, revision, list(allow_patterns)))
        for pattern in allow_patterns:
            target = Path(local_dir) / pattern
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(FINEWEB_SAMPLE, target)
        return local_dir

    def fake_from_pretrained(name, **kwargs):
        return transformers.PreTrainedTokenizerFast.from_pretrained(str(tiny_tokenizer_dir))

    monkeypatch.setattr(datasets, "load_dataset_builder", fake_builder)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake_from_pretrained)
    return downloads


def prefetch_config(tmp_path, *overrides):
    return compose_config(["data=fineweb_edu", "tokenizer=llama2", f"paths.data_dir={tmp_path / 'data'}",
                           *overrides])


def test_prefetch_then_offline_run_reads_local_copy(monkeypatch, tmp_path, fake_hub_downloads, empty_hf_cache):
    """Prefetch with faked hub calls, then load fineweb_edu and llama2 with HF_HUB_OFFLINE=1."""
    cfg = prefetch_config(tmp_path, "data.prefetch_files=2", "data.validation_documents=5", "data.num_workers=0")
    fetched = prefetch(cfg)
    data_dir = tmp_path / "data"
    assert fetched == [("data=fineweb_edu", data_dir / "fineweb_edu" / "sample-10BT"),
                       ("tokenizer=llama2", data_dir / "tokenizers" / "llama2")]
    assert fake_hub_downloads == [("HuggingFaceFW/fineweb-edu", "dataset", FAKE_REVISION, FAKE_FILES[:2])]
    manifest = json.loads((data_dir / "fineweb_edu" / "sample-10BT" / MANIFEST).read_text())
    assert manifest["splits"] == {"train": FAKE_FILES[:2]}

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert documents(cfg.data, "validation", data_dir) == FINEWEB_TEXTS[:5]
    assert documents(cfg.data, "train", data_dir) == FINEWEB_TEXTS[5:] + FINEWEB_TEXTS   # two copies of the file
    tokenizer = build_tokenizer(OmegaConf.merge(cfg.tokenizer, {"vocab_size": None}), data_dir)
    datamodule = build_datamodule(cfg.data, tokenizer, 32, data_dir=data_dir)
    datamodule.setup()
    assert next(iter(datamodule.train_dataloader())).shape == (cfg.data.batch_size, 33)


def test_prefetch_offline_fails_before_download(monkeypatch, tmp_path, fake_hub_downloads):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(UserError, match="HF_HUB_OFFLINE=1 is set; run `idattn prefetch data=fineweb_edu`"):
        prefetch(prefetch_config(tmp_path))
    assert time.perf_counter() - started < 5
    assert fake_hub_downloads == []
    assert not (tmp_path / "data").exists()


def test_prefetch_of_offline_sources_downloads_nothing(tmp_path):
    cfg = compose_config(["data=local", f"data.path={FINEWEB_SAMPLE}", f"paths.data_dir={tmp_path}"])
    assert prefetch(cfg) == []


def test_prefetch_rejects_invalid_file_limit(tmp_path, fake_hub_downloads):
    with pytest.raises(UserError, match="invalid value 0 for data.prefetch_files"):
        prefetch(prefetch_config(tmp_path, "data.prefetch_files=0"))


# --- preflight -----------------------------------------------------------------------------------------

def test_preflight_offline_hub_source_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose_config(["data=fineweb_edu"])
    with pytest.raises(UserError, match="HF_HUB_OFFLINE=1 is set; run `idattn prefetch data=fineweb_edu`"):
        check_data_access(cfg.data, cfg.tokenizer, tmp_path)


def test_preflight_offline_tokenizer_raises(monkeypatch, tmp_path, empty_hf_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose_config(["tokenizer=llama2"])
    with pytest.raises(UserError, match="idattn prefetch tokenizer=llama2"):
        check_data_access(cfg.data, cfg.tokenizer, tmp_path)


def test_preflight_local_errors_raise(tmp_path):
    cfg = compose_config(["data=local", f"data.path={tmp_path / 'missing.jsonl'}"])
    with pytest.raises(UserError, match="does not exist"):
        check_data_access(cfg.data, cfg.tokenizer, tmp_path)
    cfg = compose_config(["data=pg19", f"data.path={FINEWEB_SAMPLE}"])
    with pytest.raises(UserError, match="data.path is the validation split of data=pg19"):
        check_data_access(cfg.data, cfg.tokenizer, tmp_path)


def test_preflight_passes_offline_with_local_sources(monkeypatch, tmp_path, tiny_tokenizer_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for overrides in (["data=embedded"], ["data=fineweb_edu", f"data.path={FINEWEB_SAMPLE}", "tokenizer=gpt2"],
                      ["data=local", f"data.path={FIXTURES / 'txt'}", "tokenizer=llama2",
                       f"tokenizer.source={tiny_tokenizer_dir}"]):
        cfg = compose_config(overrides)
        check_data_access(cfg.data, cfg.tokenizer, tmp_path)


def test_preflight_imports_no_heavy_packages():
    code = ("import sys\n"
            "from idattn_cli.config import compose_config\n"
            "from idattn_cli.data.preflight import check_data_access\n"
            f"cfg = compose_config(['data=local', 'data.path={FINEWEB_SAMPLE}'])\n"
            "check_data_access(cfg.data, cfg.tokenizer)\n"
            "print(sorted(m for m in ('torch', 'lightning', 'datasets', 'transformers') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- training ------------------------------------------------------------------------------------------

def test_train_on_fineweb_edu_local_files(tmp_path):
    from idattn_cli.recipes.train import train

    overrides = ["data=fineweb_edu", f"data.path={FINEWEB_SAMPLE}", "data.validation_documents=5",
                 "data.validation_max_tokens=512", "data.num_workers=0", "data.batch_size=8",
                 "trainer.max_steps=3", "model.n_layers=1", "model.context_length=32", "optim.warmup_steps=1",
                 f"paths.results_dir={tmp_path / 'results'}", f"paths.output_dir={tmp_path / 'outputs'}"]
    row = train(compose_config(overrides), overrides)
    assert row["steps"] == 3
    assert row["data"] == "fineweb_edu"
    assert row["val_tokens"] == 15 * 32            # (512 - 1) // 32 blocks of 32 targets
    assert 0 < row["val_bpb"] < 9
    assert (tmp_path / "results" / "runs.csv").is_file()


def test_cli_offline_fineweb_edu_exits_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    result = subprocess.run([IDATTN, "train", "data=fineweb_edu"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert time.perf_counter() - started < 10
    assert result.returncode == 2
    assert "cannot reach the Hugging Face Hub for dataset HuggingFaceFW/fineweb-edu (sample-10BT)" in result.stderr
    assert "idattn prefetch data=fineweb_edu" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("start", [0, 3, 4, 5])
def test_stream_resume_continues_batches(start):
    """A resumed loader (start batches skipped) yields the uninterrupted loader's batches from there on,
    with 2 workers whose roles rotate (batch i comes from worker i mod 2)."""
    tokenizer, pieces = ByteTokenizer(), fineweb_pieces()

    def batches(start_batch, count):
        dataset = PackedStreamDataset(pieces, tokenizer, 65, seed=1, rank=0, world_size=1, batch_size=3,
                                      start_batch=start_batch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2)
        return [batch for batch, _ in zip(loader, range(count))]

    full, resumed = batches(0, 9), batches(start, 9 - start)
    assert len(resumed) == 9 - start
    assert all(torch.equal(a, b) for a, b in zip(resumed, full[start:], strict=True))
