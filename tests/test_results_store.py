"""Results CSV appends: header on creation, widening without losing rows."""

import csv

from idattn_cli.results.store import append_row


def read(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_append_creates_file_with_header(tmp_path):
    path = tmp_path / "results" / "runs.csv"
    append_row(path, {"run_id": "a", "val_loss": 1.5})
    append_row(path, {"run_id": "b", "val_loss": 2.5})
    assert read(path) == [{"run_id": "a", "val_loss": "1.5"}, {"run_id": "b", "val_loss": "2.5"}]


def test_new_column_widens_header_and_keeps_rows(tmp_path):
    path = tmp_path / "runs.csv"
    append_row(path, {"run_id": "a", "val_loss": 1.5})
    append_row(path, {"run_id": "b", "val_bpb": 0.9})
    rows = read(path)
    assert rows[0] == {"run_id": "a", "val_loss": "1.5", "val_bpb": ""}
    assert rows[1] == {"run_id": "b", "val_loss": "", "val_bpb": "0.9"}
    assert not list(tmp_path.glob("*.tmp"))


def test_new_file_has_default_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = append_row(tmp_path / "runs.csv", {"a": 1})
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
