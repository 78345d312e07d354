"""Append rows to a results CSV without losing or interleaving anything.

Appends hold a file lock (`<file>.lock`), so concurrent runs never interleave rows. A row with
columns the file lacks makes the file be rewritten with the wider header: into a temporary file
that then replaces the old one. A crash so leaves either the old or the new file, both whole.
"""

import csv
import io
import os
import tempfile
from pathlib import Path

from filelock import FileLock

from ..provenance import global_rank


def append_row(path: str | Path, row: dict) -> Path:
    """Append `row` to the CSV at `path`, creating it (and its folder) with a header if needed.

    Only the global-rank-0 process of a distributed run writes; the other ranks return at once.
    """
    path = Path(path)
    if global_rank() != 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        header = _read_header(path)
        if header is None:
            _write_atomic(path, list(row), [], row)
        elif set(row) <= set(header):
            _append_line(path, header, row)
        else:
            with path.open(newline="") as file:
                old_rows = list(csv.DictReader(file))
            _write_atomic(path, header + [key for key in row if key not in header], old_rows, row)
    return path


def _append_line(path: Path, header: list[str], row: dict) -> None:
    """Write the row with one write() to a file opened with O_APPEND, so a kill cannot leave half a row
    behind a partly written buffer."""
    text = io.StringIO()
    csv.DictWriter(text, fieldnames=header).writerow(row)
    data = text.getvalue().encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        while data:
            data = data[os.write(descriptor, data):]
    finally:
        os.close(descriptor)


def _read_header(path: Path) -> list[str] | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="") as file:
        return next(csv.reader(file), None)


def _write_atomic(path: Path, header: list[str], rows: list[dict], new_row: dict) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp creates 0600; a results file is as readable as any other
        with os.fdopen(handle, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
            writer.writerow(new_row)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
