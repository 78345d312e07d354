"""Every row of docs/errors.md: the command gives that exit status and that one line on stderr."""

import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from idattn_cli.cli import app

DOC = Path(__file__).parent.parent / "docs" / "errors.md"
FIXTURES = Path(__file__).parent / "fixtures" / "errors"   # the bad files the table's commands read
ROW = re.compile(r"^\| `idattn (?P<command>[^`]+)` \| (?P<exit>\d+) \| (?P<message>.+) \|$")
ROWS = [match.groupdict() for line in DOC.read_text().splitlines() if (match := ROW.match(line))]


def test_table_has_enough_rows():
    assert len(ROWS) >= 15


@pytest.mark.parametrize("row", ROWS, ids=[row["command"] for row in ROWS])
def test_documented_error(row, tmp_path, monkeypatch):
    shutil.copytree(FIXTURES, tmp_path / "errors")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, shlex.split(row["command"]))
    assert result.exit_code == int(row["exit"]), result.output
    assert result.stderr.strip() == row["message"]
    assert "Traceback" not in result.output
