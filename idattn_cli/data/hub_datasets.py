"""Hugging Face Hub datasets: streamed shards, and the local copy that `idattn prefetch` writes.

A hub source's config names `hub_name`, `subset` (the dataset config, or null), `revision` and
`text_column`. `hub_pieces(data_cfg, split)` streams one hub split with
`datasets.load_dataset(..., streaming=True)` and returns one piece per shard (for Parquet data, a row group).
`require_hub` runs first, so an offline machine gets a UserError within seconds instead of retries.

`download_dataset` resolves the split's data files with `datasets.load_dataset_builder`, downloads the
first `max_files` of each split with `huggingface_hub.snapshot_download` into
<data_dir>/<name>/<subset or "default">/, and writes a manifest (MANIFEST) that maps each hub split to its
files. `prefetched_files` reads that manifest, so a later run reads the same files, in the same order,
without the hub.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote

from ..errors import UserError
from .hub import require_hub

log = logging.getLogger("idattn")

MANIFEST = "idattn_prefetch.json"
HUB_FILE_PREFIX = "hf://datasets/"


def describe(data_cfg) -> str:
    """Return e.g. "dataset HuggingFaceFW/fineweb-edu (sample-10BT)", for messages."""
    subset = data_cfg.get("subset")
    return f"dataset {data_cfg['hub_name']}" + (f" ({subset})" if subset else "")


def offline_alternatives(data_cfg) -> str:
    """Return the message part that lists the ways to read `data_cfg`'s source without the hub."""
    return (f"run `idattn prefetch data={data_cfg['name']}` on a machine with access, or pass local files with "
            f"data.path='/data/{data_cfg['name']}/*.parquet'")


def prefetched_dir(data_cfg, data_dir: str | Path) -> Path:
    """Return the folder of the prefetched copy: <data_dir>/<name>/<subset or "default">."""
    return Path(data_dir) / data_cfg["name"] / (data_cfg.get("subset") or "default")


@dataclass(frozen=True)
class HubShard:
    """Shard `index` of `count` of a streamed hub split (a `datasets.IterableDataset`).

    All shards share one dataset object, which pickle stores once when a dataloader sends the pieces to
    its workers. The shard itself is cut when it is read.
    """

    dataset: Any
    index: int
    count: int
    column: str
    label: str

    def documents(self) -> Iterator[str]:
        for row in self.dataset.shard(num_shards=self.count, index=self.index):
            text = row[self.column]
            if text:
                yield text


def hub_pieces(data_cfg, split: str) -> list[HubShard]:
    """Stream hub split `split` of `data_cfg` and return one piece per shard (a Parquet row group if possible)."""
    require_hub(describe(data_cfg), offline_alternatives(data_cfg))
    dataset = _open_stream(data_cfg, split)
    column = data_cfg["text_column"]
    if dataset.column_names is not None and column not in dataset.column_names:
        raise UserError(f"{describe(data_cfg)} has no column {column!r} (columns: "
                        f"{', '.join(dataset.column_names)}); set data.text_column to the column that contains "
                        "the text")
    # one shard per Parquet row group instead of per file, so that many dataloader workers each read
    # their own part of the stream (other formats keep one shard per file)
    dataset = dataset.select_columns([column]).reshard()
    count = dataset.n_shards
    name = data_cfg["hub_name"]
    return [HubShard(dataset, index, count, column, f"{name} {split} shard {index + 1}/{count}")
            for index in range(count)]


def _open_stream(data_cfg, split: str):
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        return datasets.load_dataset(data_cfg["hub_name"], data_cfg.get("subset"), split=split, streaming=True,
                                     revision=data_cfg.get("revision"))
    except (DatasetNotFoundError, FileNotFoundError, ValueError) as error:
        raise UserError(f"cannot stream split {split!r} of {describe(data_cfg)}: {_first_line(error)}; check "
                        "data.hub_name, data.subset and the split names in the data config") from error


def prefetched_files(data_cfg, split: str, data_dir: str | Path | None) -> list[Path] | None:
    """Return the files that `idattn prefetch` saved for hub split `split`, or None if there are none."""
    if data_dir is None:
        return None
    folder = prefetched_dir(data_cfg, data_dir)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("hub_name") != data_cfg["hub_name"] or manifest.get("subset") != data_cfg.get("subset"):
        log.warning("ignoring the prefetched copy in %s: it contains %s (%s), not %s", folder, manifest.get("hub_name"),
                    manifest.get("subset"), describe(data_cfg))
        return None
    names = manifest.get("splits", {}).get(split)
    if not names:
        return None
    files = [folder / name for name in names]
    missing = [path for path in files if not path.is_file()]
    if missing:
        raise UserError(f"the prefetched copy in {folder} lacks {missing[0]}; run `idattn prefetch "
                        f"data={data_cfg['name']}` again, or delete {folder} to use the hub")
    log.info("reading %d prefetched files of %s split %s from %s", len(files), describe(data_cfg), split, folder)
    return files


def parse_hub_file(url: str) -> tuple[str, str, str]:
    """Split "hf://datasets/<repo>@<revision>/<path>" into (repo, revision, path in the repository)."""
    if not url.startswith(HUB_FILE_PREFIX) or "@" not in url:
        raise ValueError(f"not a hub data file URL: {url}")
    repo, _, rest = url[len(HUB_FILE_PREFIX):].partition("@")
    revision, _, path = rest.partition("/")
    return repo, unquote(revision), path


def download_dataset(data_cfg, data_dir: str | Path, max_files: int | None = None) -> Path | None:
    """Download the configured hub splits into the prefetched copy's folder; None if nothing to fetch.

    Only sources with `hub_name` and without `data.path` are fetched. `max_files` caps the files taken
    per split (in the hub's order, so the held-out validation documents are the same as when streaming).
    """
    if not data_cfg.get("hub_name"):
        log.info("data=%s has no hub dataset; nothing to prefetch", data_cfg["name"])
        return None
    if data_cfg.get("path"):
        log.info("data.path is set, so data=%s reads local files; nothing to prefetch", data_cfg["name"])
        return None
    require_hub(describe(data_cfg), offline_alternatives(data_cfg))
    splits = [s for s in dict.fromkeys((data_cfg.get("train_split"), data_cfg.get("validation_split"))) if s]
    revision, files = _resolve_data_files(data_cfg, splits)
    chosen = {split: names[:max_files] if max_files else names for split, names in files.items()}
    folder = prefetched_dir(data_cfg, data_dir)
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    patterns = sorted({name for names in chosen.values() for name in names})
    log.info("downloading %d files of %s into %s", len(patterns), describe(data_cfg), folder)
    try:
        huggingface_hub.snapshot_download(data_cfg["hub_name"], repo_type="dataset", revision=revision,
                                          allow_patterns=patterns, local_dir=str(folder))
    except HfHubHTTPError as error:
        raise UserError(f"downloading {describe(data_cfg)} failed: {_first_line(error)}; a gated dataset needs "
                        "its terms accepted on the hub and a login (`hf auth login` or HF_TOKEN)") from error
    manifest = {"hub_name": data_cfg["hub_name"], "subset": data_cfg.get("subset"), "revision": revision,
                "splits": chosen}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def _resolve_data_files(data_cfg, splits: list[str]) -> tuple[str | None, dict[str, list[str]]]:
    """Return (revision, {split: repository paths}) of the data files that `datasets` would stream."""
    import datasets
    import datasets.exceptions

    try:
        builder = datasets.load_dataset_builder(data_cfg["hub_name"], data_cfg.get("subset"),
                                                revision=data_cfg.get("revision"))
    except (datasets.exceptions.DatasetNotFoundError, FileNotFoundError, ValueError) as error:
        raise UserError(f"cannot list the files of {describe(data_cfg)}: {_first_line(error)}") from error
    data_files = builder.config.data_files or {}
    revision, files = data_cfg.get("revision"), {}
    for split in splits:
        if split not in data_files:
            raise UserError(f"{describe(data_cfg)} has no split {split!r} (splits: {', '.join(data_files) or 'none'}); "
                            "fix data.train_split or data.validation_split")
        parsed = [parse_hub_file(str(url)) for url in data_files[split]]
        revision = parsed[0][1] if parsed else revision
        files[split] = [path for _, _, path in parsed]
    return revision, files


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
