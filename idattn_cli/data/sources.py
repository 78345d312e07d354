"""The documents of each split, for every `data` source.

Sources: `embedded` (Shakespeare's works inside the package), `local` (files under data.path), and hub
datasets (configs with `hub_name`: fineweb_edu and the long-document corpora). A hub source reads
data.path instead of the hub when it is set, and else a prefetched copy under <data_dir> when there is one.

The validation split comes from the first of these that the config sets:
  1. the files of data.validation_path;
  2. documents held out from the start of the training documents: the first data.validation_documents
     of them or, for in-memory sources only, the first data.validation_fraction of them (rounded, at least 1);
  3. all files of data.path (an evaluation corpus given as local files);
  4. the hub split data.validation_split.
The training split is the files of data.path, else the hub split data.train_split, minus the documents
held out in case 2. In case 3 there is no training split, and asking for one raises UserError.

Documents keep file order (files sorted by path) or hub order, so the held-out documents are the same
on every run and machine. Empty documents are skipped.
"""

import logging
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import UserError
from . import embedded
from .files import file_pieces, find_files
from .hub import require_hub
from .hub_datasets import describe, hub_pieces, offline_alternatives, prefetched_files

log = logging.getLogger("idattn")

SPLITS = ("train", "validation")


@dataclass(frozen=True)
class SkipDocuments:
    """A piece without its first `count` documents (they were held out for validation)."""

    piece: object
    count: int

    @property
    def label(self) -> str:
        return f"{self.piece.label} from document {self.count + 1}"

    def documents(self) -> Iterator[str]:
        return islice(self.piece.documents(), self.count, None)


@dataclass(frozen=True)
class Selection:
    """Pieces in stream order, and which part of their documents a split takes.

    part: "all"; "head", the held-out documents; or "tail", the documents after them. held_out is a
    document count (int) or a fraction of the documents (float), set for "head" and "tail".
    """

    pieces: list
    part: str = "all"
    held_out: int | float | None = None


def load_documents(data_cfg, split: str, data_dir: str | Path | None = None) -> Iterator[str]:
    """Return an iterator over the documents of split `split` ("train" or "validation") of `data_cfg`.

    Config errors raise here. Problems in file contents, and a split without documents, raise UserError
    while iterating. `data_dir` is `paths.data_dir` (prefetched copies); None skips them.
    """
    _check_split(split)
    label = f"the {split} split of data={data_cfg['name']}"
    if data_cfg["name"] == "embedded":
        return _require_documents(iter(embedded.load_split(split)), label)
    selection = select(data_cfg, split, data_dir)
    return _require_documents(selected_documents(selection, data_cfg), label)


def streaming_splits(data_cfg, data_dir: str | Path | None) -> tuple[Iterator[str], list]:
    """Return (validation documents, training pieces) for a streamed source.

    With held-out validation documents, this reads them and returns the training pieces that start after
    them. Otherwise the validation documents are read lazily from their own files or hub split.
    """
    validation = select(data_cfg, "validation", data_dir)
    if validation.part == "head":
        head, tail = split_head(validation.pieces, validation.held_out, data_cfg)
        return iter(head), tail
    training = select(data_cfg, "train", data_dir)
    documents = _require_documents(iter_pieces(validation.pieces), f"the validation split of data={data_cfg['name']}")
    return documents, training.pieces


def select(data_cfg, split: str, data_dir: str | Path | None, check_only: bool = False) -> Selection:
    """Resolve where split `split` of a non-embedded source comes from (see the module docstring).

    check_only=True checks the config, the local files and hub access (raising UserError as `select`
    would) but opens no hub stream; the hub's pieces are then left out of the result.
    """
    _check_split(split)
    held_out = held_out_setting(data_cfg)
    validation_path = data_cfg.get("validation_path")
    path = data_cfg.get("path")
    if split == "validation":
        if validation_path:
            return Selection(local_pieces(data_cfg, validation_path, "data.validation_path"))
        if held_out is not None:
            return Selection(training_pieces(data_cfg, data_dir, check_only), "head", held_out)
        if path:
            return Selection(local_pieces(data_cfg, path, "data.path"))
        return Selection(hub_split_pieces(data_cfg, "validation_split", data_dir, check_only))
    if validation_path or (held_out is None and not path):
        return Selection(training_pieces(data_cfg, data_dir, check_only))
    if held_out is not None:
        return Selection(training_pieces(data_cfg, data_dir, check_only), "tail", held_out)
    raise UserError(f"data.path is the validation split of data={data_cfg['name']}, so nothing is left to train "
                    "on; set data.validation_path to the evaluation files, or data.validation_documents=N to "
                    "hold out the first N documents of data.path")


def held_out_setting(data_cfg) -> int | float | None:
    """Return data.validation_documents (int), else data.validation_fraction (float), else None."""
    count = data_cfg.get("validation_documents")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise UserError(f"invalid value {count!r} for data.validation_documents; set it to a positive "
                            "integer, or null")
        return count
    fraction = data_cfg.get("validation_fraction")
    if fraction is None:
        return None
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise UserError(f"invalid value {fraction!r} for data.validation_fraction; set it to a number between "
                        "0 and 1 (exclusive), or null")
    if data_cfg.get("streaming"):
        raise UserError("data.validation_fraction needs the document count, which a streamed source does not "
                        "know; set data.validation_documents=N instead (or data.streaming=false)")
    return float(fraction)


def training_pieces(data_cfg, data_dir: str | Path | None, check_only: bool = False) -> list:
    """Return the pieces of the training documents, held-out documents included."""
    if data_cfg.get("path"):
        return local_pieces(data_cfg, data_cfg["path"], "data.path")
    if not data_cfg.get("hub_name"):
        raise UserError(f"data={data_cfg['name']} needs data.path; set it to a file, folder or glob of .txt, "
                        ".jsonl or .parquet files, e.g. data.path='/data/corpus/*.jsonl'")
    return hub_split_pieces(data_cfg, "train_split", data_dir, check_only)


def hub_split_pieces(data_cfg, key: str, data_dir: str | Path | None, check_only: bool = False) -> list:
    """Return the pieces of the hub split named by data.<key>: the prefetched copy if any, else the hub.

    check_only=True only checks that the hub is reachable where it is needed, and returns no hub pieces.
    """
    split = data_cfg.get(key)
    if not split and key == "train_split":
        raise UserError(f"data={data_cfg['name']} has no training split (data.train_split is null); it is an "
                        "evaluation corpus, so choose another data source for training")
    if not split:
        raise UserError(f"data={data_cfg['name']} has no validation split (data.validation_split is null); set "
                        "data.validation_documents=N to hold out documents, or data.validation_path")
    files = prefetched_files(data_cfg, split, data_dir)
    if files is not None:
        return file_pieces(files, data_cfg["text_column"])
    if check_only:
        require_hub(describe(data_cfg), offline_alternatives(data_cfg))
        return []
    return hub_pieces(data_cfg, split)


def local_pieces(data_cfg, pattern: str, key: str) -> list:
    """Return the pieces of the local files matched by `pattern` (config key `key`, for messages)."""
    return file_pieces(find_files(pattern, key), data_cfg.get("text_column") or "text")


def iter_pieces(pieces: Iterable) -> Iterator[str]:
    """Yield the documents of `pieces` in order."""
    for piece in pieces:
        yield from piece.documents()


def selected_documents(selection: Selection, data_cfg) -> Iterator[str]:
    """Yield the documents of the selected part."""
    documents = iter_pieces(selection.pieces)
    if selection.part == "all":
        return documents
    if isinstance(selection.held_out, int):
        if selection.part == "head":
            return islice(documents, selection.held_out)
        return _after(documents, selection.held_out, data_cfg)
    return _fraction_part(list(documents), selection, data_cfg)


def split_head(pieces: list, count: int, data_cfg) -> tuple[list[str], list]:
    """Read the first `count` documents; return them and the pieces that yield the documents after them."""
    head: list[str] = []
    for index, piece in enumerate(pieces):
        for offset, document in enumerate(piece.documents()):
            if len(head) == count:
                return head, [SkipDocuments(piece, offset), *pieces[index + 1:]]
            head.append(document)
    raise _all_held_out(f"data.validation_documents={count}", len(head), data_cfg)


def _after(documents: Iterator[str], count: int, data_cfg) -> Iterator[str]:
    held_count = sum(1 for _ in islice(documents, count))
    first = next(documents, None)
    if first is None:
        raise _all_held_out(f"data.validation_documents={count}", held_count, data_cfg)
    yield first
    yield from documents


def _fraction_part(documents: list[str], selection: Selection, data_cfg) -> Iterator[str]:
    count = max(1, round(selection.held_out * len(documents)))
    if count >= len(documents):
        raise _all_held_out(f"data.validation_fraction={selection.held_out}", len(documents), data_cfg)
    log.info("data=%s: %d of %d documents held out for validation", data_cfg["name"], count, len(documents))
    return iter(documents[:count] if selection.part == "head" else documents[count:])


def _all_held_out(setting: str, found: int, data_cfg) -> UserError:
    return UserError(f"{setting} holds out all {found} documents of data={data_cfg['name']}, leaving none for "
                     "training; lower it, add documents, or set data.validation_path")


def _require_documents(documents: Iterator[str], label: str) -> Iterator[str]:
    count = 0
    for document in documents:
        count += 1
        yield document
    if count == 0:
        raise UserError(f"{label} has no documents (its files or hub split contain only empty texts); check "
                        "data.path and data.text_column")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
