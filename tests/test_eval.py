"""`idattn eval`'s recipe end to end on local lm-eval tasks, offline, and its task and data checks."""

import csv
import math
import socket
import time
from pathlib import Path

import pytest
import yaml

from idattn_cli.config import compose_config
from idattn_cli.errors import UserError
from idattn_cli.evaluation import lm_eval_tasks
from idattn_cli.recipes.evaluate import eval_table, evaluate

FIXTURES = Path(__file__).parent / "fixtures" / "lm_eval"
FIXTURE_TASKS = ["tiny_piqa", "tiny_lambada", "tiny_wikitext"]
# A bound on the whole call, not on the hub check (well under a second): indexing lm-eval 0.4.13's
# ~14,000 built-in task YAMLs took about 9 s on a busy 2-core CPU. Hub retries, which the check
# prevents, take minutes.
FAST_FAILURE_S = 60


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory):
    """The fixture task YAMLs with absolute data_files and a private datasets cache."""
    folder = tmp_path_factory.mktemp("lm_eval_tasks")
    repository = Path(__file__).parent.parent
    for source in FIXTURES.glob("*.yaml"):
        config = yaml.safe_load(source.read_text())
        files = config["dataset_kwargs"]["data_files"]
        config["dataset_kwargs"]["data_files"] = {split: str(repository / path) for split, path in files.items()}
        config["dataset_kwargs"]["cache_dir"] = str(folder / "datasets_cache")
        (folder / source.name).write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1, empty Hugging Face caches, and bootstrap stderrs without a process pool."""
    from datasets import config as datasets_config
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DISABLE_MULTIPROC", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))


def tiny_config(tmp_path, *overrides):
    base = ["trainer.max_steps=3", "model.n_layers=1", "trainer.limit_val_batches=2",
            "trainer.final_limit_val_batches=2", f"paths.results_dir={tmp_path}", f"paths.output_dir={tmp_path}",
            "optim.warmup_steps=0", "eval.validation_max_windows=32", "eval.bootstrap_iters=10"]
    overrides = [*base, *overrides]
    return compose_config(overrides), overrides


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, task_folder):
    """One evaluation of a freshly trained tiny run on the fixture tasks: (results folder, returned rows)."""
    results = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("DISABLE_MULTIPROC", "1")
        cfg, overrides = tiny_config(results, f"eval.tasks=[{','.join(FIXTURE_TASKS)}]",
                                     f"eval.include_path={task_folder}")
        rows = evaluate(cfg, overrides)
    return results, rows


def test_eval_rows_land_in_csv(evaluated):
    results, rows = evaluated
    written = read_csv(results / "eval.csv")
    assert len(written) == len(rows)
    for column in ("eval_id", "timestamp", "run_id", "task", "metric", "value", "stderr", "reported",
                   "task_version", "num_fewshot", "n_samples", "limit", "batch_size", "max_length", "model",
                   "mixer", "data", "tokenizer", "seed", "git_revision", "torch_version", "lm_eval_version",
                   "eval_settings", "config"):
        assert column in written[0], column
    (run,) = read_csv(results / "runs.csv")
    assert {row["run_id"] for row in written} == {run["run_id"]}
    assert len({row["eval_id"] for row in written}) == 1
    assert written[0]["mixer"] == "interdomain"
    assert written[0]["max_length"] == "256"   # null: the run's context length


def test_eval_metrics_are_plausible(evaluated):
    _, rows = evaluated
    values = {(row["task"], row["metric"]): row["value"] for row in rows}
    expected = {("validation", "loss"), ("validation", "perplexity"), ("validation", "bits_per_byte"),
                ("tiny_piqa", "acc"), ("tiny_piqa", "acc_norm"), ("tiny_lambada", "acc"),
                ("tiny_lambada", "perplexity"), ("tiny_wikitext", "word_perplexity"),
                ("tiny_wikitext", "byte_perplexity"), ("tiny_wikitext", "bits_per_byte"), ("average", "acc")}
    assert set(values) == expected
    for key in [("tiny_piqa", "acc"), ("tiny_piqa", "acc_norm"), ("tiny_lambada", "acc"), ("average", "acc")]:
        assert 0.0 <= values[key] <= 1.0, key
    for key in [("validation", "perplexity"), ("tiny_lambada", "perplexity"),
                ("tiny_wikitext", "word_perplexity"), ("tiny_wikitext", "byte_perplexity")]:
        assert values[key] > 1.0, key
    assert 0.0 < values[("tiny_wikitext", "bits_per_byte")] < 9.0
    assert math.isclose(values[("validation", "perplexity")], math.exp(values[("validation", "loss")]))
    mean_accuracy = (values[("tiny_piqa", "acc")] + values[("tiny_lambada", "acc")]) / 2
    assert math.isclose(values[("average", "acc")], mean_accuracy)


def test_eval_rows_record_task_details(evaluated):
    _, rows = evaluated
    piqa = next(row for row in rows if row["task"] == "tiny_piqa" and row["metric"] == "acc")
    assert piqa["n_samples"] == 4
    assert piqa["num_fewshot"] == 0
    assert piqa["task_version"] == 1.0
    assert piqa["stderr"] is not None
    validation = next(row for row in rows if row["task"] == "validation")
    assert validation["n_samples"] == 32
    average = next(row for row in rows if row["task"] == "average")
    assert average["averaged_tasks"] == "tiny_lambada,tiny_piqa"


def test_validation_matches_training_validation(evaluated):
    """The final validation of `idattn train` scored 2 batches of 16 windows: the same 32 windows."""
    results, rows = evaluated
    (run,) = read_csv(results / "runs.csv")
    values = {row["metric"]: row["value"] for row in rows if row["task"] == "validation"}
    assert math.isclose(values["loss"], float(run["val_loss"]), rel_tol=1e-5)
    assert math.isclose(values["bits_per_byte"], float(run["val_bpb"]), rel_tol=1e-5)


def test_eval_table_shows_reported_rows(evaluated):
    _, rows = evaluated
    table = eval_table(rows)
    assert table.row_count == sum(1 for row in rows if row["reported"])
    assert table.row_count == len(rows)   # tasks outside PAPER_METRICS report every metric


def test_eval_reuses_run_by_id(evaluated):
    results, rows = evaluated
    run_id = rows[0]["run_id"]
    cfg, overrides = tiny_config(results, f"eval.run={run_id}", "eval.tasks=[]", "model.n_layers=2")
    again = evaluate(cfg, overrides)
    assert {row["task"] for row in again} == {"validation"}
    assert {row["run_id"] for row in again} == {run_id}
    assert len(read_csv(results / "runs.csv")) == 1   # nothing trained


def test_offline_hub_task_fails_fast(tmp_path, offline):
    cfg, overrides = tiny_config(tmp_path, "eval.tasks=[piqa]")
    started = time.perf_counter()
    with pytest.raises(UserError) as error:
        evaluate(cfg, overrides)
    assert time.perf_counter() - started < FAST_FAILURE_S
    message = str(error.value)
    assert "'piqa'" in message
    assert "baber/piqa" in message
    assert "HF_HUB_OFFLINE=1" in message
    assert "eval.include_path" in message
    assert "\n" not in message
    assert not (tmp_path / "runs.csv").exists()   # failed before training


def test_unreachable_hub_fails_fast(monkeypatch, offline):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with socket.socket() as probe:   # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    manager = lm_eval_tasks.load_task_manager(["arc_easy"], None)
    started = time.perf_counter()
    with pytest.raises(UserError, match=f"no connection to 127.0.0.1:{port}") as error:
        lm_eval_tasks.require_task_data(manager, ["arc_easy"])
    assert time.perf_counter() - started < 5
    assert "allenai/ai2_arc (ARC-Easy)" in str(error.value)


def test_cached_hub_dataset_passes_offline(offline):
    from huggingface_hub import constants

    Path(constants.HF_HUB_CACHE, "datasets--baber--piqa").mkdir(parents=True)
    manager = lm_eval_tasks.load_task_manager(["piqa"], None)
    lm_eval_tasks.require_task_data(manager, ["piqa"])


def test_local_tasks_pass_offline(task_folder, offline):
    manager = lm_eval_tasks.load_task_manager(FIXTURE_TASKS, str(task_folder))
    lm_eval_tasks.require_task_data(manager, FIXTURE_TASKS)
    assert "piqa" not in manager.task_index   # only the include_path was indexed


def test_unknown_task_name_lists_how_to_find_names(tmp_path, offline):
    cfg, overrides = tiny_config(tmp_path, "eval.tasks=[piqaa]")
    with pytest.raises(UserError) as error:
        evaluate(cfg, overrides)
    message = str(error.value)
    assert "'piqaa'" in message
    assert "lm-eval ls tasks" in message
    assert "piqa" in message.split("close names:")[1]
    assert not (tmp_path / "runs.csv").exists()


def test_tag_expands_to_its_tasks():
    manager = lm_eval_tasks.load_task_manager(["ai2_arc"], None)
    leaves = dict(lm_eval_tasks.leaf_task_configs(manager, ["ai2_arc"]))
    assert {"arc_easy", "arc_challenge"} <= set(leaves)
    assert leaves["arc_challenge"]["dataset_name"] == "ARC-Challenge"


@pytest.mark.parametrize("override, key", [
    ("eval.batch_size=0", "eval.batch_size"),
    ("eval.limit=1.5", "eval.limit"),
    ("eval.max_length=-1", "eval.max_length"),
    ("eval.include_path=/no/such/folder", "eval.include_path"),
])
def test_invalid_settings_raise(tmp_path, override, key):
    cfg, overrides = tiny_config(tmp_path, "eval.tasks=[tiny_piqa]", override)
    with pytest.raises(UserError, match=key):
        evaluate(cfg, overrides)


# The 1.3B Interdomain column of the downstream table of Kiyohara et al. (arXiv:2605.24330), in percent.
PAPER_INTERDOMAIN = {
    ("lambada_openai", "acc"): 44.36, ("piqa", "acc"): 71.38, ("hellaswag", "acc_norm"): 54.27,
    ("winogrande", "acc"): 57.85, ("arc_easy", "acc"): 69.91, ("arc_challenge", "acc_norm"): 37.46,
    ("social_iqa", "acc"): 41.45, ("boolq", "acc"): 59.63,
}


def test_average_matches_paper_table():
    results = {"results": {}, "versions": {}, "n-shot": {}}
    for (task, metric), value in PAPER_INTERDOMAIN.items():
        entry = results["results"].setdefault(task, {"alias": task, "acc,none": 0.0, "acc_stderr,none": "N/A"})
        entry[f"{metric},none"] = value / 100
    results["results"]["hellaswag"]["acc,none"] = 0.99   # not the reported metric: must not count
    results["results"]["wikitext"] = {"alias": "wikitext", "word_perplexity,none": 19.77, "bits_per_byte,none": 0.8051}
    rows = lm_eval_tasks.metric_rows(results)
    average = lm_eval_tasks.average_row(rows)
    assert round(100 * average["value"], 2) == 54.54
    assert average["averaged_tasks"].count(",") == 7
    reported = {(row["task"], row["metric"]) for row in rows if row["reported"]}
    assert reported == set(PAPER_INTERDOMAIN) | {("wikitext", "word_perplexity"), ("wikitext", "bits_per_byte")}


def test_unknown_run_id_reported_before_tasks(tmp_path, monkeypatch):
    """A bad run id is the first error, even when the default hub tasks are unreachable too."""
    from idattn_cli.config import compose_config
    from idattn_cli.errors import UserError
    from idattn_cli.recipes.evaluate import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    overrides = [f"paths.results_dir={tmp_path}", "eval.run=nope"]
    with pytest.raises(UserError, match="run id 'nope' not found"):
        evaluate(compose_config(overrides), overrides)
