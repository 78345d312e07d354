"""Local text files as documents: .txt (one document per file), JSON Lines and Parquet.

`find_files(pattern, key)` expands a file, a folder (searched recursively) or a glob into a sorted list,
and `file_pieces(files, text_column)` turns it into pieces: one per text or JSON Lines file and one per
Parquet row group. A piece is the unit that the streaming dataset hands to a dataloader worker. It is a
small picklable object whose `documents()` yields the texts in file order. Empty texts and missing values
are skipped. Text and JSON Lines files may be gzip-compressed (.gz).

Input problems raise `UserError` naming the file and the fix: no matching files, an empty file,
text that is not UTF-8, invalid JSON, and a missing or non-string text column (listing the columns found).
Metadata problems (a missing Parquet column, an empty file) are found when the pieces are built. Problems
inside a file's content are found when it is read.
"""

import glob
import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import UserError

log = logging.getLogger("idattn")

TEXT_SUFFIXES = (".txt",)
JSON_LINES_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)
SUPPORTED = ".txt, .jsonl, .json (JSON Lines), .parquet, and .txt/.jsonl/.json with .gz"
PARQUET_BATCH_ROWS = 1024


def file_kind(path: Path) -> str | None:
    """Return "text", "json_lines" or "parquet" from the file name (a trailing .gz allowed), else None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        compressed = True
    else:
        compressed = False
    if not suffixes:
        return None
    if suffixes[-1] in TEXT_SUFFIXES:
        return "text"
    if suffixes[-1] in JSON_LINES_SUFFIXES:
        return "json_lines"
    if suffixes[-1] in PARQUET_SUFFIXES and not compressed:
        return "parquet"
    return None


def find_files(pattern: str, key: str) -> list[Path]:
    """Expand a file, folder or glob (`key` is the config key, for messages) into sorted supported files."""
    text = str(pattern)
    expanded = str(Path(text).expanduser())
    if glob.has_magic(text):
        matches = [Path(p) for p in sorted(glob.glob(expanded, recursive=True)) if Path(p).is_file()]
        if not matches:
            raise UserError(f"{key}={text!r} matches no files; check the pattern (quote it so that the shell "
                            "does not expand it)")
        unsupported = [p for p in matches if file_kind(p) is None]
        if unsupported:
            raise UserError(f"{key}={text!r} matches {unsupported[0]}, which is not a supported file type; "
                            f"supported: {SUPPORTED}")
        return matches
    path = Path(expanded)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and file_kind(p) is not None)
        if not found:
            raise UserError(f"{key}={text!r} is a folder without {SUPPORTED} files")
        return found
    if path.is_file():
        if file_kind(path) is None:
            raise UserError(f"{key}={text!r} is not a supported file type; supported: {SUPPORTED}")
        return [path]
    raise UserError(f"{key}={text!r} does not exist; set it to a file, a folder or a glob such as "
                    "'/data/corpus/*.parquet'")


@dataclass(frozen=True)
class TextFile:
    """A .txt file that contains one document."""

    path: Path

    @property
    def label(self) -> str:
        return str(self.path)

    def documents(self) -> Iterator[str]:
        try:
            with _open_text(self.path) as file:
                text = file.read()
        except UnicodeDecodeError as error:
            raise _not_utf8(self.path, error) from error
        if text:
            yield text


@dataclass(frozen=True)
class JsonLinesFile:
    """A JSON Lines file: one object per line, the document in field `column`."""

    path: Path
    column: str

    @property
    def label(self) -> str:
        return str(self.path)

    def documents(self) -> Iterator[str]:
        try:
            with _open_text(self.path) as file:
                for number, line in enumerate(file, start=1):
                    text = self._text(line, number)
                    if text:
                        yield text
        except UnicodeDecodeError as error:
            raise _not_utf8(self.path, error) from error

    def _text(self, line: str, number: int) -> str | None:
        if not line.strip():
            return None
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{self.path} line {number} is not valid JSON ({error.msg}); each line of a "
                            "JSON Lines file must hold one object") from error
        if not isinstance(record, dict) or self.column not in record:
            fields = ", ".join(record) if isinstance(record, dict) else type(record).__name__
            raise UserError(f"{self.path} line {number} has no field {self.column!r} (found: {fields}); "
                            "set data.text_column to the field that contains the text")
        value = record[self.column]
        if value is not None and not isinstance(value, str):
            raise UserError(f"{self.path} line {number}: field {self.column!r} has type {type(value).__name__}, "
                            "not string; set data.text_column to a text field")
        return value


@dataclass(frozen=True)
class ParquetRowGroup:
    """One row group of a Parquet file, whose documents are the values of string column `column`."""

    path: Path
    column: str
    row_group: int

    @property
    def label(self) -> str:
        return f"{self.path} (row group {self.row_group})"

    def documents(self) -> Iterator[str]:
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(self.path)
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[self.row_group],
                                          columns=[self.column]):
            for text in batch.column(0).to_pylist():
                if text:
                    yield text


def file_pieces(files: list[Path], text_column: str) -> list:
    """Return the pieces of `files` in order, after checking that no file is empty and Parquet columns exist."""
    pieces = []
    for path in files:
        kind = file_kind(path)
        if kind is None:
            raise UserError(f"{path} is not a supported file type; supported: {SUPPORTED}")
        if kind != "parquet" and path.stat().st_size == 0:
            raise UserError(f"{path} is empty; remove it or point data.path elsewhere")
        if kind == "text":
            pieces.append(TextFile(path))
        elif kind == "json_lines":
            pieces.append(JsonLinesFile(path, text_column))
        else:
            pieces.extend(_parquet_pieces(path, text_column))
    return pieces


def _parquet_pieces(path: Path, column: str) -> list[ParquetRowGroup]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise UserError(f"{path} is not a readable Parquet file ({error})") from error
    schema = parquet.schema_arrow
    if column not in schema.names:
        raise UserError(f"{path} has no column {column!r} (columns: {', '.join(schema.names)}); "
                        "set data.text_column to the column that contains the text")
    kind = schema.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise UserError(f"column {column!r} of {path} has type {kind}, not string; set data.text_column to "
                        "a text column")
    if parquet.metadata.num_rows == 0:
        raise UserError(f"{path} is empty (0 rows); remove it or point data.path elsewhere")
    return [ParquetRowGroup(path, column, index) for index in range(parquet.metadata.num_row_groups)]


def _open_text(path: Path):
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _not_utf8(path: Path, error: UnicodeDecodeError) -> UserError:
    return UserError(f"{path} is not valid UTF-8 text ({error.reason}); convert it to UTF-8, e.g. with iconv")
