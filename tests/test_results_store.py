"""Results CSV appends: header on creation, widening without losing rows."""

import csv
import sys

import pytest

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


def _append_many(path: str, worker: int, count: int) -> None:
    for index in range(count):
        # every 10th row adds a column, so some appends rewrite the whole file under the lock
        extra = {f"extra_{worker}": index} if index % 10 == 9 else {}
        append_row(path, {"worker": worker, "index": index, "text": f"row, with \"quotes\" {index}", **extra})


def test_concurrent_appends_keep_every_row(tmp_path):
    """8 processes append 50 rows each to one file at once; all 400 rows must be there, whole."""
    import multiprocessing

    path = str(tmp_path / "runs.csv")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(path, worker, 50)) for worker in range(8)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [process.exitcode for process in workers] == [0] * 8
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 400
    assert {(row["worker"], row["index"]) for row in rows} == {(str(w), str(i)) for w in range(8) for i in range(50)}
    assert all(row["text"] == f"row, with \"quotes\" {row['index']}" for row in rows)


@pytest.mark.parametrize("variable", ["RANK", "SLURM_PROCID", "LOCAL_RANK"])
def test_only_rank_zero_writes(tmp_path, monkeypatch, variable):
    # outside a Trainer, the launcher's environment names the rank (Lightning's value wins once imported)
    monkeypatch.delitem(sys.modules, "lightning.fabric", raising=False)
    monkeypatch.setenv(variable, "1")
    append_row(tmp_path / "runs.csv", {"a": 1})
    assert not (tmp_path / "runs.csv").exists()
    monkeypatch.setenv(variable, "0")
    append_row(tmp_path / "runs.csv", {"a": 1})
    assert (tmp_path / "runs.csv").read_text().splitlines() == ["a", "1"]
