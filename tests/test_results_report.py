"""`idattn results`: tables pinned by golden files, filters, the published reference numbers, figures, damaged files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from idattn_cli.errors import UserError
from idattn_cli.results.load import load_results
from idattn_cli.results.render import render_text
from idattn_cli.results.report import summary, write_plots
from idattn_cli.results.store import append_row

GOLDEN = Path(__file__).parent / "golden"
QUERY = json.dumps({"name": "interdomain", "readout": "query"})
LINEAR = json.dumps({"name": "interdomain", "readout": "linear"})


def _time(index: int) -> str:
    return f"2026-12-01T00:00:{index:02d}+00:00"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    """A results folder with a few rows of each table, written by the same store the recipes use."""
    folder = tmp_path_factory.mktemp("results")
    runs = [("tiny", "interdomain", QUERY, 1, 6.1, 1_000_000), ("tiny", "interdomain", QUERY, 2, 6.3, 1_000_000),
            ("tiny", "softmax", "{}", 1, 5.5, 950_000), ("125m", "interdomain", QUERY, 1, 16.9, 135_416_208)]
    for index, (model, mixer, config, seed, ppl, params) in enumerate(runs):
        append_row(folder / "runs.csv", {
            "run_id": f"run{index}", "timestamp": _time(index), "model": model, "mixer": mixer, "data": "embedded",
            "seed": seed, "steps": 600, "n_params": params, "val_loss": 0.0, "val_ppl": ppl, "val_bpb": 2.5,
            "recipe": "", "run_name": "", "mixer_config": config})
    cells = [("query_projection", "full", 0.0, 1), ("query_projection", "readout=linear", 0.2, 1),
             ("query_projection", "full", 0.0, 2), ("query_projection", "readout=linear", 0.1, 2),
             ("rope", "full", 0.0, 1), ("rope", "rope=false", 0.05, 1)]
    for index, (component, cell, delta, seed) in enumerate(cells):
        append_row(folder / "ablations.csv", {
            "ablation_id": f"a{index}", "timestamp": _time(index), "component": component, "cell": cell,
            "run_id": f"r{index}", "model": "tiny", "mixer": "interdomain", "seed": seed, "val_loss": 1.8 + delta,
            "val_ppl": 6.0 + delta, "delta_loss": delta, "delta_ppl": delta * 6, "config_key": f"k{index}"})
    for index, (mixer, factor, ppl, buckets) in enumerate([
            ("interdomain", 1.0, 6.3, [6.4, 6.2]), ("interdomain", 3.5, 6.5, [6.4, 6.2, 6.5, 6.6, 6.6, 6.7, 6.6]),
            ("softmax", 1.0, 5.6, [5.7, 5.5]), ("softmax", 3.5, 11.3, [5.8, 5.5, 8.0, 12.0, 16.0, 20.0, 22.0])]):
        append_row(folder / "extrapolation.csv", {
            "extrapolation_id": f"e{index}", "timestamp": _time(index), "run_id": mixer, "model": "tiny",
            "mixer": mixer, "data": "embedded", "seed": 1, "factor": factor, "train_context": 256,
            "eval_length": round(256 * factor), "ppl": ppl, "bucket_size": 128,
            "bucket_start": json.dumps([128 * i for i in range(len(buckets))]), "bucket_ppl": json.dumps(buckets)})
    for index, (mixer, task, metric, value) in enumerate([
            ("interdomain", "validation", "perplexity", 6.2), ("interdomain", "piqa", "acc", 0.61),
            ("interdomain", "average", "acc", 0.61), ("softmax", "validation", "perplexity", 5.6),
            ("softmax", "piqa", "acc", 0.58), ("softmax", "average", "acc", 0.58)]):
        append_row(folder / "eval.csv", {
            "eval_id": mixer, "timestamp": _time(index), "run_id": mixer, "task": task, "metric": metric,
            "value": value, "stderr": "", "reported": True, "model": "tiny", "mixer": mixer, "seed": 1})
    return folder


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/<name>; IDATTN_UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("IDATTN_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with IDATTN_UPDATE_GOLDEN=1 if that is intended"


@pytest.mark.parametrize("table", ["runs", "ablations", "extrapolation", "eval"])
@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_golden_output(results_dir, table, fmt):
    title, frame, _ = summary(table, results_dir, [])
    text = render_text(frame, title, fmt, width=80)
    check_golden(f"{table}.{'txt' if fmt == 'table' else 'md'}", text)
    if fmt == "table":
        assert max(len(line) for line in text.splitlines()) <= 80


def test_golden_paper_ablations(results_dir):
    title, frame, _ = summary("ablations", results_dir, [], paper=True)
    text = render_text(frame, title, "markdown")
    check_golden("ablations_paper.md", text)
    assert "| cube_dualkv_linear" in text
    assert "3.0048" in text


def test_seeds_grouped_as_mean_and_std(results_dir):
    _, frame, _ = summary("runs", results_dir, [])
    tiny = frame[frame["model"] == "tiny"].iloc[0]
    assert tiny["interdomain"] == "6.200 ± 0.141 (2)"
    assert tiny["softmax"] == "5.500"


def test_where_filters_rows(results_dir):
    _, frame, rows = summary("runs", results_dir, ["mixer=interdomain", "seed=1"])
    assert set(rows["run_id"]) == {"run0", "run3"}
    assert list(frame.columns) == ["model", "interdomain"]


def test_where_unknown_column(results_dir):
    with pytest.raises(UserError, match="unknown column 'colour' in --where"):
        summary("runs", results_dir, ["colour=red"])


def test_latex_and_csv_formats(results_dir):
    title, frame, _ = summary("extrapolation", results_dir, [])
    latex = render_text(frame, title, "latex")
    assert "\\begin{tabular}" in latex
    assert "3.5x" in latex
    assert render_text(frame, title, "csv").splitlines()[0] == "factor,interdomain,softmax"


def test_paper_runs_difference(results_dir):
    _, frame, _ = summary("runs", results_dir, [], paper=True)
    row = frame[(frame["model"] == "125m") & (frame["mixer"] == "interdomain")].iloc[0]
    assert row["paper"] == "16.48"
    assert row["Δ"] == "+0.42"


@pytest.mark.parametrize("table", ["runs", "ablations", "extrapolation", "eval"])
def test_plots_are_png_and_svg(results_dir, tmp_path, table):
    _, _, rows = summary(table, results_dir, [])
    paths = write_plots(table, rows, tmp_path)
    for path in paths:
        assert path.stat().st_size > 0, path
    for png in [path for path in paths if path.suffix == ".png"]:
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.size == (975, 720)   # 3.25 x 2.4 inches at 300 dpi


def test_extrapolation_plot_one_line_per_mixer(results_dir, tmp_path, monkeypatch):
    import matplotlib.figure

    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *args, **kwargs: saved.append(fig))
    _, _, rows = summary("extrapolation", results_dir, [])
    write_plots("extrapolation", rows, tmp_path)
    lines = saved[0].axes[0].get_lines()
    labels = [line.get_label() for line in lines if not line.get_label().startswith("_")]
    assert labels == ["interdomain", "softmax"]


def test_older_file_without_new_columns(tmp_path):
    (tmp_path / "runs.csv").write_text("run_id,timestamp,model,mixer,seed,val_ppl\nr1,t,tiny,s4d,1,7.5\n")
    frame = load_results(tmp_path, "runs")
    assert frame["mixer_config"].tolist() == [""]
    title, table, _ = summary("runs", tmp_path, [])
    assert table.iloc[0]["s4d"] == "7.500"


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("run_id,model\n", "has a header but no rows"),
    ("run_id,model,val_ppl\nr1,tiny,5\nr2,tiny\n", "line 3: 2 fields, but the header has 3"),
    ("run_id,model,val_ppl\nr1,tiny,5\nr2,tiny,abc\n", "line 3: val_ppl='abc' is not a number"),
])
def test_damaged_file_errors(tmp_path, content, message):
    (tmp_path / "runs.csv").write_text(content)
    with pytest.raises(UserError, match=message) as error:
        load_results(tmp_path, "runs")
    assert str(tmp_path / "runs.csv") in str(error.value)


def test_missing_file_error(tmp_path):
    with pytest.raises(UserError, match="ablations.csv not found; run `idattn ablate"):
        load_results(tmp_path, "ablations")


def test_cli_malformed_file_one_line(tmp_path):
    (tmp_path / "runs.csv").write_text("run_id,model,val_ppl\nr1,tiny\n")
    idattn = Path(sys.executable).parent / "idattn"
    result = subprocess.run([str(idattn), "results", "--results-dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "line 2" in result.stderr


def _config(steps: int, seed: int, readout: str = "query") -> str:
    return json.dumps({"seed": seed, "model": {"name": "tiny", "d_model": 128}, "trainer": {"max_steps": steps},
                       "mixer": {"name": "interdomain", "readout": readout}, "data": {"name": "embedded"}})


def test_runs_with_other_settings_not_averaged(tmp_path):
    for index, (steps, seed, ppl) in enumerate([(600, 1, 6.0), (600, 2, 6.2), (30, 1, 30.0)]):
        append_row(tmp_path / "runs.csv", {"run_id": f"r{index}", "timestamp": _time(index), "model": "tiny",
                                          "mixer": "interdomain", "seed": seed, "val_ppl": ppl, "config": _config(steps, seed)})
    _, frame, _ = summary("runs", tmp_path, [])
    cells = dict(zip(frame["model"], frame["interdomain"]))
    assert cells == {"tiny (max_steps=30)": "30.000", "tiny (max_steps=600)": "6.100 ± 0.141 (2)"}
    _, _, rows = summary("runs", tmp_path, [])
    with pytest.raises(UserError, match="one training setup per scale"):
        write_plots("runs", rows, tmp_path / "plots")


def test_ablations_keep_each_config(tmp_path):
    for index, (steps, cell, delta) in enumerate([(600, "full", 0.0), (600, "readout=linear", 0.2),
                                                 (30, "full", 0.0), (30, "readout=linear", 0.5)]):
        append_row(tmp_path / "ablations.csv", {
            "ablation_id": f"a{index}", "timestamp": _time(index), "component": "query_projection", "cell": cell,
            "run_id": f"r{index}", "model": "tiny", "mixer": "interdomain", "seed": 1, "val_loss": 2 + delta,
            "val_ppl": 7 + delta, "delta_loss": delta, "delta_ppl": delta, "config_key": f"k{index}",
            "config": _config(steps, 1, "linear" if delta else "query")})
    _, frame, _ = summary("ablations", tmp_path, [])
    assert frame["Δ loss"].tolist() == ["+0.0000", "+0.2000", "+0.0000", "+0.5000"]
    assert frame["model"].tolist() == ["tiny (max_steps=600)"] * 2 + ["tiny (max_steps=30)"] * 2


def test_paper_ablations_count_shared_reference_once(results_dir):
    _, frame, _ = summary("ablations", results_dir, [], paper=True)
    assert frame.iloc[0]["your Δ loss"] == "+0.0000 ± 0.0000 (3)"   # three full-layer runs: r0, r2, r4


def test_where_compares_numbers(results_dir):
    _, _, rows = summary("extrapolation", results_dir, ["factor=3.5"])
    assert len(rows) == 2
    _, _, rows = summary("extrapolation", results_dir, ["factor=1.0"])
    assert len(rows) == 2


def test_damaged_bucket_list(tmp_path):
    append_row(tmp_path / "extrapolation.csv", {
        "extrapolation_id": "e", "timestamp": _time(0), "run_id": "r", "model": "tiny", "mixer": "softmax",
        "data": "embedded", "seed": 1, "factor": 1.0, "train_context": 64, "eval_length": 64, "ppl": 5.0,
        "bucket_size": 32, "bucket_start": "[0, 32", "bucket_ppl": "[5.0, 5.0]"})
    _, _, rows = summary("extrapolation", tmp_path, [])
    with pytest.raises(UserError, match="line 2: bucket_start or bucket_ppl is not a JSON list"):
        write_plots("extrapolation", rows, tmp_path / "plots")


def test_cli_unwritable_out(results_dir):
    idattn = Path(sys.executable).parent / "idattn"
    result = subprocess.run([str(idattn), "results", "--results-dir", str(results_dir), "--out", "/proc/nope.md"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "cannot write /proc/nope.md" in result.stderr
    assert "Traceback" not in result.stderr
