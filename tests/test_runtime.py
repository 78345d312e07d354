"""The CPU allocator settings that `idattn` applies before torch allocates."""

import platform

import pytest
from typer.testing import CliRunner

from idattn_cli import runtime
from idattn_cli.cli import app


def test_default_setting_leaves_allocator_alone(monkeypatch):
    monkeypatch.setenv(runtime.ENV, "default")
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    monkeypatch.setattr(runtime, "setting", "default")
    assert runtime.tune_cpu_allocator() == "default"
    assert "THP_MEM_ALLOC_ENABLE" not in runtime.os.environ


def test_tuned_setting_enables_huge_pages(monkeypatch):
    monkeypatch.delenv(runtime.ENV, raising=False)
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    setting = runtime.tune_cpu_allocator()
    assert runtime.os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert setting == ("thp+glibc-keep" if on_glibc else "thp")


def test_unknown_setting_rejected(monkeypatch):
    monkeypatch.setenv(runtime.ENV, "off")
    with pytest.raises(ValueError, match="invalid IDATTN_CPU_ALLOCATOR='off'"):
        runtime.tune_cpu_allocator()
    result = CliRunner().invoke(app, ["results", "runs"])
    assert result.exit_code == 2
    assert "error: invalid IDATTN_CPU_ALLOCATOR='off'; set it to default" in result.stderr
